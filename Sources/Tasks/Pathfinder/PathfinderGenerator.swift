import Tensors

/// One generated Pathfinder image with the geometry it was drawn from.
public struct PathfinderImage: Sendable {
    /// Image side in pixels.
    public let size: Int
    /// Intensities 0-255, row-major, `size * size`.
    public var pixels: [UInt8]
    /// Every contour as its paddles in drawing order: [0] and [1] are the two target contours, the rest distractors.
    public var contours: [[Paddle]]
    /// The two circle markers: the starting tip of one target contour and the final tip of the same (label 1) or
    /// the other (label 0) target contour.
    public var markers: [ImagePoint]
    /// 1 iff both markers sit on the two ends of one contour.
    public var label: Int
    /// The paddle margin drawn for this image.
    public var margin: Int
}

/// A port of the Pathfinder contour generator (drewlinsley/pathfinder, snakes.py and snakes2.py; the data of LRA's
/// Pathfinder and Path-X tasks), written with exact segment geometry instead of dilated pixel masks:
///
/// 1. Two target contours start from paddles whose starting tips are `seedDistance` apart near the image centre;
///    they grow alternately, paddle by paddle, to `contourLength` paddles each.
/// 2. Growing: the next paddle starts at pivot c = end + m u(theta) (u = unit vector, theta = last direction,
///    m = margin) and runs from c + m u(phi) to c + (L + m) u(phi); phi is drawn from directions one pixel of arc
///    apart on the circle of radius L + m around c, with weight cos(min(continuity |phi - theta|, pi/2))^2, zero
///    where the new end would come within m + (m + thickness/2) of another paddle. A draw is accepted if the new
///    paddle keeps 2 m + thickness from every paddle but its predecessor and stays inside the border band;
///    `paddleAttempts` draws, else the contour fails (and the image restarts, as in the original).
/// 3. Distractor contours of `distractorLength` paddles start from random free positions and grow the same way;
///    one that fails `distractorAttempts` times is skipped.
/// 4. Label 0 or 1 with equal probability; the markers are the starting tip of a random target contour and the final
///    tip of the same (1) or the other (0) target contour.
///
/// Differences from the original, all deliberate: collisions use segment distances, so contours never touch
/// (the original's pixel test lets the second seed land on the first and does not commit the first target's last
/// paddle before distractors are drawn); rendering is 4x4 supersampled coverage rather than PIL lines resized with
/// Lanczos; no single-paddle clutter (LRA turned it off).
public struct PathfinderGenerator: Sendable {
    public var parameters: PathfinderParameters

    public init(_ parameters: PathfinderParameters) { self.parameters = parameters }

    /// One image; every draw comes from `rng`.
    public func sample(_ rng: inout RandomGenerator) -> PathfinderImage {
        let p = parameters
        let label = rng.int(below: 2)
        for _ in 0..<10_000 {
            let margin = rng.element(of: p.margins)
            var canvas = Canvas(parameters: p, margin: Double(margin))
            guard let targets = canvas.placeTargets(&rng) else { continue }
            var contours = targets.map { $0.map { canvas.placed[$0] } }
            for _ in 0..<p.distractorCount {
                for _ in 0..<p.distractorAttempts {
                    let mark = canvas.placed.count
                    if let d = canvas.growContour(length: p.distractorLength, &rng) {
                        contours.append(d.map { canvas.placed[$0] })
                        break
                    }
                    canvas.placed.removeSubrange(mark...)
                }
            }
            let origin = rng.int(below: 2)
            let terminal = label == 1 ? origin : 1 - origin
            let markers = [contours[origin].first!.start, contours[terminal].last!.end]
            let pixels = PathfinderRenderer(parameters: p).render(contours: contours, markers: markers)
            return PathfinderImage(size: p.imageSize, pixels: pixels, contours: contours, markers: markers,
                                   label: label, margin: margin)
        }
        preconditionFailure("pathfinder: no image with two target contours of \(p.contourLength) paddles in 10000 attempts")
    }
}

/// The paddles placed so far and the placement rules.
struct Canvas {
    let p: PathfinderParameters
    let margin: Double
    /// Half the distance two paddles of different contours must keep: margin + thickness / 2.
    let radius: Double
    let low: Double
    let high: Double
    var placed: [Paddle] = []

    init(parameters: PathfinderParameters, margin: Double) {
        p = parameters
        self.margin = margin
        radius = margin + parameters.paddleThickness / 2
        low = Double(parameters.padding - 1) + radius
        high = Double(parameters.imageSize - parameters.padding) - radius
    }

    func inside(_ q: ImagePoint) -> Bool { q.y >= low && q.y <= high && q.x >= low && q.x <= high }

    func inside(_ paddle: Paddle) -> Bool { inside(paddle.start) && inside(paddle.end) }

    /// Whether `paddle` comes closer than 2 radius to a placed paddle other than `exempt` (its predecessor).
    func collides(_ paddle: Paddle, exempt: Int?) -> Bool {
        for (i, q) in placed.enumerated() where i != exempt {
            if paddle.distance(to: q) < 2 * radius { return true }
        }
        return false
    }

    /// Whether a new end point keeps radius + margin from every placed paddle but `exempt`.
    func endFree(_ q: ImagePoint, exempt: Int) -> Bool {
        guard inside(q) else { return false }
        for (i, other) in placed.enumerated() where i != exempt {
            if other.distance(to: q) < radius + margin { return false }
        }
        return true
    }

    /// A paddle of length L from `start` in a random whole-degree direction.
    func paddle(from start: ImagePoint, _ rng: inout RandomGenerator) -> Paddle {
        let angle = Double(rng.int(in: -180...179)) * Double.pi / 180
        return Paddle(start: start, end: start.moved(p.paddleLength, towards: angle))
    }

    /// Appends a first paddle at a uniformly random free position; its index, or nil if none was found.
    mutating func seed(_ rng: inout RandomGenerator) -> Int? {
        for _ in 0..<400 {
            let start = ImagePoint(y: Double(rng.int(below: p.imageSize)), x: Double(rng.int(below: p.imageSize)))
            let candidate = paddle(from: start, &rng)
            if inside(candidate) && !collides(candidate, exempt: nil) {
                placed.append(candidate)
                return placed.count - 1
            }
        }
        return nil
    }

    /// Appends the paddle that continues the one at `last` (step 2 of the generator); its index, or nil.
    mutating func extend(from last: Int, _ rng: inout RandomGenerator) -> Int? {
        let previous = placed[last]
        let theta = previous.angle
        let pivot = previous.end.moved(margin, towards: theta)
        let reach = p.paddleLength + margin
        let count = Int((2 * Double.pi * reach).rounded(.up))
        var angles = [Double](repeating: 0, count: count)
        var weights = [Double](repeating: 0, count: count)
        for j in 0..<count {
            let phi = 2 * Double.pi * Double(j) / Double(count) - Double.pi
            var turn = abs(phi - theta)
            turn = min(turn, 2 * Double.pi - turn)
            let w = max(_cos(min(turn * p.continuity, Double.pi / 2)), 0)
            angles[j] = phi
            weights[j] = w * w > 1e-12 && endFree(pivot.moved(reach, towards: phi), exempt: last) ? w * w : 0
        }
        guard weights.contains(where: { $0 > 0 }) else { return nil }
        for _ in 0..<p.paddleAttempts {
            let phi = angles[rng.index(weightedBy: weights)]
            let candidate = Paddle(start: pivot.moved(margin, towards: phi), end: pivot.moved(reach, towards: phi))
            if inside(candidate) && !collides(candidate, exempt: last) {
                placed.append(candidate)
                return placed.count - 1
            }
        }
        return nil
    }

    /// A contour of `length` paddles from a random seed; its paddle indices, or nil.
    mutating func growContour(length: Int, _ rng: inout RandomGenerator) -> [Int]? {
        guard let first = seed(&rng) else { return nil }
        var contour = [first]
        while contour.count < length {
            guard let next = extend(from: contour.last!, &rng) else { return nil }
            contour.append(next)
        }
        return contour
    }

    /// The two target contours (step 1), grown alternately; nil if either fails.
    mutating func placeTargets(_ rng: inout RandomGenerator) -> [[Int]]? {
        let size = p.imageSize
        var low = Int(2 * p.seedDistance), high = size - Int(2 * p.seedDistance)
        if high <= low { (low, high) = (size / 2, size / 2 + 1) }
        var first: Paddle?
        for _ in 0..<p.paddleAttempts {
            let start = ImagePoint(y: Double(rng.int(in: low...(high - 1))), x: Double(rng.int(in: low...(high - 1))))
            let candidate = paddle(from: start, &rng)
            if inside(candidate) { first = candidate; break }
        }
        guard let first else { return nil }
        placed.append(first)
        var second: Paddle?
        for _ in 0..<p.paddleAttempts {
            let direction = Double(rng.int(below: 360)) * Double.pi / 180
            let offset = first.start.moved(p.seedDistance, towards: direction)
            let start = ImagePoint(y: offset.y.rounded(), x: offset.x.rounded())
            let candidate = paddle(from: start, &rng)
            if inside(candidate) && !collides(candidate, exempt: nil) { second = candidate; break }
        }
        guard let second else { return nil }
        placed.append(second)
        var contours = [[0], [1]]
        for _ in 1..<p.contourLength {
            for s in 0..<2 {
                guard let next = extend(from: contours[s].last!, &rng) else { return nil }
                contours[s].append(next)
            }
        }
        return contours
    }
}

/// Draws contours and markers: each pixel takes the largest of its paddles' and markers' intensities, where a
/// paddle contributes min(1, intensity x coverage) (coverage = the fraction of a 4 x 4 grid of sub-pixel samples
/// within thickness / 2 of the segment) and a marker its coverage by the disc of radius `markerRadius`.
public struct PathfinderRenderer: Sendable {
    public var parameters: PathfinderParameters
    static let subsamples = 4

    public init(parameters: PathfinderParameters) { self.parameters = parameters }

    public func render(contours: [[Paddle]], markers: [ImagePoint]) -> [UInt8] {
        let size = parameters.imageSize
        var image = [Double](repeating: 0, count: size * size)
        let half = parameters.paddleThickness / 2
        for paddle in contours.joined() {
            let top = min(paddle.start.y, paddle.end.y) - half, bottom = max(paddle.start.y, paddle.end.y) + half
            let left = min(paddle.start.x, paddle.end.x) - half, right = max(paddle.start.x, paddle.end.x) + half
            draw(&image, rows: top...bottom, columns: left...right, intensity: parameters.paddleIntensity) {
                paddle.distance(to: $0) <= half
            }
        }
        let r = parameters.markerRadius
        for m in markers {
            draw(&image, rows: (m.y - r)...(m.y + r), columns: (m.x - r)...(m.x + r), intensity: 1) { $0.distance(to: m) <= r }
        }
        return image.map { UInt8(min(255, max(0, ($0 * 255).rounded()))) }
    }

    private func draw(_ image: inout [Double], rows: ClosedRange<Double>, columns: ClosedRange<Double>,
                      intensity: Double, covers: (ImagePoint) -> Bool) {
        let size = parameters.imageSize
        let s = Self.subsamples
        let r0 = max(0, Int((rows.lowerBound - 0.5).rounded(.down))), r1 = min(size - 1, Int((rows.upperBound + 0.5).rounded(.up)))
        let c0 = max(0, Int((columns.lowerBound - 0.5).rounded(.down))), c1 = min(size - 1, Int((columns.upperBound + 0.5).rounded(.up)))
        guard r0 <= r1, c0 <= c1 else { return }
        for row in r0...r1 {
            for column in c0...c1 {
                var hits = 0
                for a in 0..<s {
                    for b in 0..<s {
                        let q = ImagePoint(y: Double(row) + (Double(a) + 0.5) / Double(s) - 0.5,
                                           x: Double(column) + (Double(b) + 0.5) / Double(s) - 0.5)
                        if covers(q) { hits += 1 }
                    }
                }
                guard hits > 0 else { continue }
                let v = min(1, intensity * Double(hits) / Double(s * s))
                image[row * size + column] = max(image[row * size + column], v)
            }
        }
    }
}
