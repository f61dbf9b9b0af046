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

    /// One image; every draw comes from `rng`. Images are drawn by rejection, as in the original: an attempt whose
    /// target contours cannot be completed starts over (at 64 x 64 with contour length 14 about 1 attempt in 2000
    /// succeeds; the task checks feasibility when it is built).
    public func sample(_ rng: inout RandomGenerator) -> PathfinderImage {
        guard let image = sample(&rng, attempts: 1_000_000) else {
            preconditionFailure("pathfinder: no image with two target contours of \(parameters.contourLength) paddles in 1000000 attempts")
        }
        return image
    }

    /// One image, or nil if `attempts` attempts all failed.
    func sample(_ rng: inout RandomGenerator, attempts: Int) -> PathfinderImage? {
        let p = parameters
        let label = rng.int(below: 2)
        for _ in 0..<attempts {
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
                    canvas.truncate(to: mark)
                }
            }
            let origin = rng.int(below: 2)
            let terminal = label == 1 ? origin : 1 - origin
            let markers = [contours[origin].first!.start, contours[terminal].last!.end]
            let pixels = PathfinderRenderer(parameters: p).render(contours: contours, markers: markers)
            return PathfinderImage(size: p.imageSize, pixels: pixels, contours: contours, markers: markers,
                                   label: label, margin: margin)
        }
        return nil
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
    private(set) var placed: [Paddle] = []
    /// Bounding boxes of the placed paddles (minY, maxY, minX, maxX), to skip far paddles cheaply.
    private var boxes: [(Double, Double, Double, Double)] = []
    /// The candidate directions of an extension, one pixel of arc apart on the circle of radius L + m:
    /// (angle, sin, cos).
    private let directions: [(angle: Double, sin: Double, cos: Double)]
    /// Scratch space for the candidates' weights.
    private var weights: [Double]

    /// sin and cos of the whole-degree directions -180...179 of seed paddles.
    private static let degrees: [(sin: Double, cos: Double)] = (-180...179).map { d in
        let a = Double(d) * Double.pi / 180
        return (_sin(a), _cos(a))
    }

    init(parameters: PathfinderParameters, margin: Double) {
        p = parameters
        self.margin = margin
        radius = margin + parameters.paddleThickness / 2
        low = Double(parameters.padding - 1) + radius
        high = Double(parameters.imageSize - parameters.padding) - radius
        let count = Int((2 * Double.pi * (parameters.paddleLength + margin)).rounded(.up))
        directions = (0..<count).map { j in
            let phi = 2 * Double.pi * Double(j) / Double(count) - Double.pi
            return (phi, _sin(phi), _cos(phi))
        }
        weights = [Double](repeating: 0, count: count)
    }

    func inside(_ q: ImagePoint) -> Bool { q.y >= low && q.y <= high && q.x >= low && q.x <= high }

    func inside(_ paddle: Paddle) -> Bool { inside(paddle.start) && inside(paddle.end) }

    mutating func append(_ paddle: Paddle) -> Int {
        placed.append(paddle)
        boxes.append((min(paddle.start.y, paddle.end.y), max(paddle.start.y, paddle.end.y),
                      min(paddle.start.x, paddle.end.x), max(paddle.start.x, paddle.end.x)))
        return placed.count - 1
    }

    /// Removes the paddles placed after the first `count` (a failed distractor).
    mutating func truncate(to count: Int) {
        placed.removeSubrange(count...)
        boxes.removeSubrange(count...)
    }

    /// Whether placed paddle i's bounding box comes within `gap` of the box [y0, y1] x [x0, x1].
    @inline(__always) private func near(_ i: Int, _ y0: Double, _ y1: Double, _ x0: Double, _ x1: Double, _ gap: Double) -> Bool {
        let b = boxes[i]
        return b.0 - gap <= y1 && y0 <= b.1 + gap && b.2 - gap <= x1 && x0 <= b.3 + gap
    }

    /// Whether `paddle` comes closer than 2 radius to a placed paddle other than `exempt` (its predecessor).
    func collides(_ paddle: Paddle, exempt: Int?) -> Bool {
        let gap = 2 * radius
        let y0 = min(paddle.start.y, paddle.end.y), y1 = max(paddle.start.y, paddle.end.y)
        let x0 = min(paddle.start.x, paddle.end.x), x1 = max(paddle.start.x, paddle.end.x)
        for i in placed.indices where i != exempt && near(i, y0, y1, x0, x1, gap) {
            if paddle.distance(to: placed[i]) < gap { return true }
        }
        return false
    }

    /// Whether a new end point keeps radius + margin from every placed paddle but `exempt`.
    func endFree(_ q: ImagePoint, exempt: Int) -> Bool {
        guard inside(q) else { return false }
        let gap = radius + margin
        for i in placed.indices where i != exempt && near(i, q.y, q.y, q.x, q.x, gap) {
            if placed[i].distance(to: q) < gap { return false }
        }
        return true
    }

    /// A paddle of length L from `start` in a random whole-degree direction.
    func paddle(from start: ImagePoint, _ rng: inout RandomGenerator) -> Paddle {
        let u = Self.degrees[rng.int(in: -180...179) + 180]
        return Paddle(start: start, end: ImagePoint(y: start.y + p.paddleLength * u.sin, x: start.x + p.paddleLength * u.cos))
    }

    /// Appends a first paddle at a uniformly random free position; its index, or nil if none was found.
    mutating func seed(_ rng: inout RandomGenerator) -> Int? {
        for _ in 0..<400 {
            let start = ImagePoint(y: Double(rng.int(below: p.imageSize)), x: Double(rng.int(below: p.imageSize)))
            let candidate = paddle(from: start, &rng)
            if inside(candidate) && !collides(candidate, exempt: nil) { return append(candidate) }
        }
        return nil
    }

    /// Appends the paddle that continues the one at `last` (step 2 of the generator); its index, or nil.
    mutating func extend(from last: Int, _ rng: inout RandomGenerator) -> Int? {
        let previous = placed[last]
        let theta = previous.angle
        let pivot = previous.end.moved(margin, towards: theta)
        let reach = p.paddleLength + margin
        var any = false
        for (j, d) in directions.enumerated() {
            var turn = abs(d.angle - theta)
            turn = min(turn, 2 * Double.pi - turn)
            weights[j] = 0
            guard turn * p.continuity < Double.pi / 2 else { continue }  // weight cos(pi/2)^2 = 0
            let w = _cos(turn * p.continuity)
            let end = ImagePoint(y: pivot.y + reach * d.sin, x: pivot.x + reach * d.cos)
            if w * w > 1e-12 && endFree(end, exempt: last) {
                weights[j] = w * w
                any = true
            }
        }
        guard any else { return nil }
        for _ in 0..<p.paddleAttempts {
            let d = directions[rng.index(weightedBy: weights)]
            let candidate = Paddle(start: ImagePoint(y: pivot.y + margin * d.sin, x: pivot.x + margin * d.cos),
                                   end: ImagePoint(y: pivot.y + reach * d.sin, x: pivot.x + reach * d.cos))
            if inside(candidate) && !collides(candidate, exempt: last) { return append(candidate) }
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
        _ = append(first)
        var second: Paddle?
        for _ in 0..<p.paddleAttempts {
            let direction = Double(rng.int(below: 360)) * Double.pi / 180
            let offset = first.start.moved(p.seedDistance, towards: direction)
            let start = ImagePoint(y: offset.y.rounded(), x: offset.x.rounded())
            let candidate = paddle(from: start, &rng)
            if inside(candidate) && !collides(candidate, exempt: nil) { second = candidate; break }
        }
        guard let second else { return nil }
        _ = append(second)
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

    /// The image of `contours` and `markers` as intensities 0-255, row-major.
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
