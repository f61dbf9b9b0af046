import Tensors

/// A point in image coordinates: pixel (row r, column c) is centred at (y: r, x: c).
public struct ImagePoint: Sendable, Equatable, Codable {
    public var y: Double
    public var x: Double
    public init(y: Double, x: Double) {
        self.y = y
        self.x = x
    }

    /// The point `distance` away in direction `angle` (radians; 0 = +x, pi/2 = +y, as in the original's
    /// `translate_coord`).
    public func moved(_ distance: Double, towards angle: Double) -> ImagePoint {
        ImagePoint(y: y + distance * _sin(angle), x: x + distance * _cos(angle))
    }

    public func distance(to p: ImagePoint) -> Double { ((y - p.y) * (y - p.y) + (x - p.x) * (x - p.x)).squareRoot() }
}

/// One dash of a contour: a segment from `start` to `end`; a contour grows from the end of its last paddle.
public struct Paddle: Sendable, Equatable, Codable {
    public var start: ImagePoint
    public var end: ImagePoint
    public init(start: ImagePoint, end: ImagePoint) {
        self.start = start
        self.end = end
    }

    /// The direction from start to end (radians in (-pi, pi]).
    public var angle: Double { _atan2(end.y - start.y, end.x - start.x) }

    /// The distance from `p` to the segment.
    public func distance(to p: ImagePoint) -> Double {
        let dy = end.y - start.y, dx = end.x - start.x
        let lengthSquared = dy * dy + dx * dx
        var t = lengthSquared > 0 ? ((p.y - start.y) * dy + (p.x - start.x) * dx) / lengthSquared : 0
        t = min(1, max(0, t))
        return p.distance(to: ImagePoint(y: start.y + t * dy, x: start.x + t * dx))
    }

    /// The distance between two segments (0 if they cross).
    public func distance(to other: Paddle) -> Double {
        if crosses(other) { return 0 }
        return min(distance(to: other.start), distance(to: other.end), other.distance(to: start), other.distance(to: end))
    }

    private func crosses(_ o: Paddle) -> Bool {
        func orient(_ a: ImagePoint, _ b: ImagePoint, _ c: ImagePoint) -> Double {
            (b.x - a.x) * (c.y - a.y) - (b.y - a.y) * (c.x - a.x)
        }
        let d1 = orient(o.start, o.end, start), d2 = orient(o.start, o.end, end)
        let d3 = orient(start, end, o.start), d4 = orient(start, end, o.end)
        return ((d1 > 0 && d2 < 0) || (d1 < 0 && d2 > 0)) && ((d3 > 0 && d4 < 0) || (d3 < 0 && d4 > 0))
    }
}

/// The settings of the Pathfinder generator (Linsley et al. 2018, "Learning long-range spatial dependencies with
/// horizontal gated recurrent units"; Kim et al. 2020), with the values LRA used for its 32, 64 and 128 pixel data
/// (lra_benchmarks/data/pathfinder.py, on top of the defaults of drewlinsley/pathfinder's snakes2_wrapper.py).
public struct PathfinderParameters: Sendable, Equatable {
    /// Image side in pixels.
    public var imageSize: Int
    /// Width of the border band no paddle may touch.
    public var padding: Int
    /// Length of one paddle (dash).
    public var paddleLength: Double
    /// Stroke width of a paddle.
    public var paddleThickness: Double
    /// Candidate paddle margins, one drawn per image: the gap between successive paddles of a contour is 2 m, and
    /// paddles of different contours keep 2 m + thickness apart.
    public var margins: [Int]
    /// Distance between the starting tips of the two target contours.
    public var seedDistance: Double
    /// Radius of the two circle markers.
    public var markerRadius: Double
    /// Continuity c: a turn of d radians between successive paddles has weight cos(min(c d, pi/2))^2.
    public var continuity: Double
    /// Paddles per target contour (6 easy, 9 intermediate, 14 hard).
    public var contourLength: Int
    /// Paddles per distractor contour (contourLength / 3).
    public var distractorLength: Int
    /// Number of distractor contours tried.
    public var distractorCount: Int
    /// Paddle intensity (contrast) relative to the markers' 1.0; clipped to 1 after antialiasing.
    public var paddleIntensity: Double
    /// Attempts to place one paddle (the original's max_paddle_retrial + 1).
    public var paddleAttempts = 3
    /// Attempts to place one distractor contour before skipping it (max_distractor_contour_retrial + 1).
    public var distractorAttempts = 5

    /// LRA's settings for `imageSize` 32, 64 or 128 (Path-X) and a contour length of 6, 9 or 14 (any >= 2 allowed):
    /// - 32: padding 1, margin 1, paddle length 2, thickness 0.5, seed distance 7, marker radius 1.5, continuity 1.0,
    ///   20 / distractorLength distractors, contrast 2 x 0.75;
    /// - 64: padding 1, margin 1, paddle length 5, thickness 1, seed distance 12, marker radius 2.5, continuity 1.8,
    ///   22 / distractorLength distractors, contrast 0.8;
    /// - 128: padding 1, margins {2, 3}, paddle length 5, thickness 1.5, seed distance 20, marker radius 3,
    ///   continuity 1.8, 35 / distractorLength distractors, contrast 0.9.
    public static func lra(imageSize: Int, contourLength: Int) throws -> PathfinderParameters {
        guard contourLength >= 2 && contourLength <= 64 else {
            throw SequenceLabError("task pathfinder: contour_length \(contourLength) must be in 2...64 (6 easy, 9 intermediate, 14 hard)")
        }
        let distractorLength = max(1, contourLength / 3)
        func make(_ padding: Int, _ margins: [Int], _ length: Double, _ thickness: Double, _ seedDistance: Double,
                  _ markerRadius: Double, _ continuity: Double, _ distractorBudget: Int, _ intensity: Double) -> PathfinderParameters {
            PathfinderParameters(
                imageSize: imageSize, padding: padding, paddleLength: length, paddleThickness: thickness, margins: margins,
                seedDistance: seedDistance, markerRadius: markerRadius, continuity: continuity, contourLength: contourLength,
                distractorLength: distractorLength, distractorCount: distractorBudget / distractorLength,
                paddleIntensity: intensity)
        }
        switch imageSize {
        case 32: return make(1, [1], 2, 0.5, 7, 1.5, 1.0, 20, 1.5)
        case 64: return make(1, [1], 5, 1, 12, 2.5, 1.8, 22, 0.8)
        case 128: return make(1, [2, 3], 5, 1.5, 20, 3, 1.8, 35, 0.9)
        default: throw SequenceLabError("task pathfinder: image_size \(imageSize) must be 32, 64 or 128 (Path-X)")
        }
    }

    public init(imageSize: Int, padding: Int, paddleLength: Double, paddleThickness: Double, margins: [Int],
                seedDistance: Double, markerRadius: Double, continuity: Double, contourLength: Int,
                distractorLength: Int, distractorCount: Int, paddleIntensity: Double) {
        self.imageSize = imageSize
        self.padding = padding
        self.paddleLength = paddleLength
        self.paddleThickness = paddleThickness
        self.margins = margins
        self.seedDistance = seedDistance
        self.markerRadius = markerRadius
        self.continuity = continuity
        self.contourLength = contourLength
        self.distractorLength = distractorLength
        self.distractorCount = distractorCount
        self.paddleIntensity = paddleIntensity
    }

    /// The largest turn between successive paddles with non-zero weight: pi / (2 c).
    public var maximumTurn: Double { Double.pi / (2 * continuity) }
}

import Foundation
@inline(__always) func _sin(_ x: Double) -> Double { Foundation.sin(x) }
@inline(__always) func _cos(_ x: Double) -> Double { Foundation.cos(x) }
@inline(__always) func _atan2(_ y: Double, _ x: Double) -> Double { Foundation.atan2(y, x) }
