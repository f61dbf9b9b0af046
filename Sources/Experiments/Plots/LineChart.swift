import Foundation

/// A line chart written as SVG: series of (x, y) points with markers, linear or log axes, ticks, axis labels and a
/// legend; sized for a paper column (a 360 x 270 px plot area, 11 px text; the legend widens and lengthens the
/// figure instead of squeezing the plot or clipping names) and colour-blind-safe (Okabe-Ito palette; series that
/// share a colour, say one layer at two widths, are told apart by dash patterns).
public struct LineChart {
    public struct Series {
        public let name: String
        public let points: [(x: Double, y: Double)]
        /// A hex RGB colour and a dash index; nil: the palette by the series' position, and solid.
        public var color: String?
        public var dash: Int?
        public init(name: String, points: [(x: Double, y: Double)], color: String? = nil, dash: Int? = nil) {
            self.name = name
            self.points = points.sorted { $0.x < $1.x }
            self.color = color
            self.dash = dash
        }
    }

    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var logX = false
    public var logY = false
    public var series: [Series]

    public init(title: String, xLabel: String, yLabel: String, logX: Bool = false, logY: Bool = false, series: [Series]) {
        self.title = title
        self.xLabel = xLabel
        self.yLabel = yLabel
        self.logX = logX
        self.logY = logY
        self.series = series
    }

    /// Okabe-Ito, its yellow darkened for contrast on white and placed first (the registry's first and tenth layers,
    /// diagonal and GAM, land on it).
    static let palette = ["#C4B000", "#D55E00", "#0072B2", "#009E73", "#E69F00", "#56B4E9", "#CC79A7", "#000000", "#999999"]
    static let dashes = ["", "6,3", "2,2", "8,3,2,3", "12,4", "4,2,1,2,1,2", "1,4", "10,2,2,2,2,2"]

    /// The chart as an SVG document: a plot area of `plotWidth` x `plotHeight` px plus axes, title and legend.
    public func svg(plotWidth: Double = 360, plotHeight: Double = 270) -> String {
        let (width, height, body) = render(plotWidth: plotWidth, plotHeight: plotHeight)
        return svgDocument(width: width, height: height, body: body)
    }

    /// The chart's size and its SVG elements (no document wrapper), for figures of several panels.
    func render(plotWidth: Double, plotHeight: Double) -> (width: Double, height: Double, body: String) {
        let legendWidth = 36 + 6.2 * Double(series.map(\.name.count).max() ?? 0)
        let (left, top) = (56.0, 26.0)
        let (right, bottom) = (left + plotWidth, top + plotHeight)
        let width = (right + 8 + legendWidth).rounded(.up)
        let height = max(bottom + 42, top + 8 + 15 * Double(series.count) + 4).rounded(.up)
        let points = series.flatMap(\.points).filter { (!logX || $0.x > 0) && (!logY || $0.y > 0) && $0.x.isFinite && $0.y.isFinite }
        let xAxis = Axis(values: points.map(\.x), log: logX, from: left, to: right)
        let yAxis = Axis(values: points.map(\.y), log: logY, from: bottom, to: top)
        // the title centred over the plot, or from the left edge when it is wider than that allows
        let titleWidth = 7.0 * Double(title.count), centre = (left + right) / 2
        let titleX = centre - titleWidth / 2 >= 4 ? "x=\"\(f(centre))\" text-anchor=\"middle\"" : "x=\"4\" text-anchor=\"start\""
        var svg = "<text \(titleX) y=\"16\" font-size=\"12\" font-weight=\"bold\">\(escape(title))</text>\n"
        for t in xAxis.ticks {
            let x = xAxis.position(t)
            svg += "<line x1=\"\(f(x))\" y1=\"\(f(top))\" x2=\"\(f(x))\" y2=\"\(f(bottom))\" stroke=\"#e5e5e5\"/>\n"
            svg += "<text x=\"\(f(x))\" y=\"\(f(bottom + 14))\" text-anchor=\"middle\">\(xAxis.label(t))</text>\n"
        }
        for t in yAxis.ticks {
            let y = yAxis.position(t)
            svg += "<line x1=\"\(f(left))\" y1=\"\(f(y))\" x2=\"\(f(right))\" y2=\"\(f(y))\" stroke=\"#e5e5e5\"/>\n"
            svg += "<text x=\"\(f(left - 5))\" y=\"\(f(y + 4))\" text-anchor=\"end\">\(yAxis.label(t))</text>\n"
        }
        svg += "<rect x=\"\(f(left))\" y=\"\(f(top))\" width=\"\(f(right - left))\" height=\"\(f(bottom - top))\" fill=\"none\" stroke=\"#333\"/>\n"
        svg += "<text x=\"\((left + right) / 2)\" y=\"\(f(height - 8))\" text-anchor=\"middle\">\(escape(xLabel))\(logX ? " (log)" : "")</text>\n"
        svg += "<text transform=\"translate(14,\(f((top + bottom) / 2))) rotate(-90)\" text-anchor=\"middle\">\(escape(yLabel))\(logY ? " (log)" : "")</text>\n"
        for (i, s) in series.enumerated() {
            let color = s.color ?? Self.palette[i % Self.palette.count]
            let dash = Self.dashes[(s.dash ?? 0) % Self.dashes.count]
            let dashAttribute = dash.isEmpty ? "" : " stroke-dasharray=\"\(dash)\""
            let shown = s.points.filter { (!logX || $0.x > 0) && (!logY || $0.y > 0) && $0.x.isFinite && $0.y.isFinite }
            let path = shown.map { "\(f(xAxis.position($0.x))),\(f(yAxis.position($0.y)))" }.joined(separator: " ")
            if shown.count > 1 {
                svg += "<polyline points=\"\(path)\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"1.6\"\(dashAttribute)/>\n"
            }
            if shown.count <= 40 {
                for p in shown {
                    svg += "<circle cx=\"\(f(xAxis.position(p.x)))\" cy=\"\(f(yAxis.position(p.y)))\" r=\"2.6\" fill=\"\(color)\"/>\n"
                }
            }
            let ly = top + 8 + 15 * Double(i)
            svg += "<line x1=\"\(f(right + 10))\" y1=\"\(f(ly))\" x2=\"\(f(right + 30))\" y2=\"\(f(ly))\" stroke=\"\(color)\" stroke-width=\"2\"\(dashAttribute)/>\n"
            svg += "<text x=\"\(f(right + 34))\" y=\"\(f(ly + 4))\">\(escape(s.name))</text>\n"
        }
        return (width, height, svg)
    }
}

/// A figure of one or more line charts stacked vertically (say, one panel per task), as one SVG document.
public struct Figure {
    public var panels: [LineChart]

    public init(_ panels: [LineChart]) { self.panels = panels }

    public func svg(plotWidth: Double = 360, plotHeight: Double = 270) -> String {
        let rendered = panels.map { $0.render(plotWidth: plotWidth, plotHeight: plotHeight) }
        var body = "", y = 0.0
        for panel in rendered {
            body += y == 0 ? panel.body : "<g transform=\"translate(0,\(f(y)))\">\n\(panel.body)</g>\n"
            y += panel.height
        }
        return svgDocument(width: rendered.map(\.width).max() ?? 0, height: y, body: body)
    }
}

private func svgDocument(width: Double, height: Double, body: String) -> String {
    """
    <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" viewBox="0 0 \(Int(width)) \(Int(height))" font-family="Helvetica, Arial, sans-serif" font-size="11">
    <rect width="100%" height="100%" fill="white"/>
    \(body)</svg>

    """
}

/// One axis: data range -> pixels, with ticks (powers of 10 or 2 on log axes, "nice" steps on linear ones).
struct Axis {
    let low: Double, high: Double, log: Bool, from: Double, to: Double

    init(values: [Double], log: Bool, from: Double, to: Double) {
        var lo = values.min() ?? 0, hi = values.max() ?? 1
        if log { lo = Foundation.log10(max(lo, 1e-300)); hi = Foundation.log10(max(hi, 1e-300)) }
        if hi - lo < 1e-12 { lo -= 0.5; hi += 0.5 }
        let pad = log ? 0.05 * (hi - lo) : 0.04 * (hi - lo)
        (low, high, self.log, self.from, self.to) = (lo - pad, hi + pad, log, from, to)
    }

    func position(_ v: Double) -> Double {
        let t = log ? Foundation.log10(v) : v
        return from + (t - low) / (high - low) * (to - from)
    }

    var ticks: [Double] {
        if log {
            let decades = high - low
            let base = decades < 1.5 ? 2.0 : 10.0
            let lb = Foundation.log10(base)
            return (Int((low / lb).rounded(.up))...Int((high / lb).rounded(.down))).map { Foundation.pow(base, Double($0)) }
        }
        let raw = (high - low) / 5
        let magnitude = Foundation.pow(10, (Foundation.log10(raw)).rounded(.down))
        let step = [1.0, 2, 2.5, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? raw
        return stride(from: (low / step).rounded(.up) * step, through: high, by: step).map { $0 }
    }

    func label(_ v: Double) -> String {
        if abs(v) < 1e-12 * max(abs(high), abs(low), 1) { return "0" }  // not "-0" from a tick a rounding below zero
        if abs(v) >= 1e5 || (abs(v) < 1e-3 && v != 0) { return String(format: "%.0e", v) }
        if v == v.rounded() { return String(format: "%.0f", v) }
        return String(format: "%g", (v * 1000).rounded() / 1000)
    }
}

private func f(_ x: Double) -> String { String(format: "%.1f", x) }
private func escape(_ s: String) -> String {
    s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
}
