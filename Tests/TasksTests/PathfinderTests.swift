import Foundation
import XCTest
@testable import Tasks
@testable import Tensors

/// Pathfinder: the label is checked by a flood fill over the paddles (two paddles are linked when they are no further
/// apart than the gap inside a contour), independently of the generator's contour lists; the geometry rules
/// (continuity, gaps, separation, bounds) and the rendered image are checked too.
final class PathfinderTests: XCTestCase {
    /// Connected groups of paddles, linking two when their segments come within `gap` of each other.
    static func components(_ paddles: [Paddle], gap: Double) -> [Int] {
        var component = Array(0..<paddles.count)
        func root(_ i: Int) -> Int { component[i] == i ? i : root(component[i]) }
        for i in 0..<paddles.count {
            for j in (i + 1)..<paddles.count where paddles[i].distance(to: paddles[j]) <= gap {
                component[root(j)] = root(i)
            }
        }
        return (0..<paddles.count).map(root)
    }

    /// Checks one image against its parameters; returns nothing, fails the test on any violation.
    static func check(_ image: PathfinderImage, _ p: PathfinderParameters, file: StaticString = #filePath, line: UInt = #line) {
        let m = Double(image.margin), eps = 1e-9
        XCTAssertTrue(p.margins.contains(image.margin), file: file, line: line)
        XCTAssertEqual(image.pixels.count, p.imageSize * p.imageSize, file: file, line: line)
        XCTAssertEqual(image.contours[0].count, p.contourLength, file: file, line: line)
        XCTAssertEqual(image.contours[1].count, p.contourLength, file: file, line: line)
        XCTAssertGreaterThan(image.contours.count, 2, "no distractor placed", file: file, line: line)
        for d in image.contours.dropFirst(2) { XCTAssertEqual(d.count, p.distractorLength, file: file, line: line) }
        XCTAssertEqual(image.contours[0][0].start.distance(to: image.contours[1][0].start), p.seedDistance, accuracy: 0.75,
                       file: file, line: line)
        // contour rules: paddle length, gap <= 2m, turn < pi / (2 continuity), inside the image
        for contour in image.contours {
            for (k, paddle) in contour.enumerated() {
                XCTAssertEqual(paddle.start.distance(to: paddle.end), p.paddleLength, accuracy: 1e-9, file: file, line: line)
                for q in [paddle.start, paddle.end] {
                    XCTAssertTrue(q.y >= 0 && q.x >= 0 && q.y <= Double(p.imageSize - 1) && q.x <= Double(p.imageSize - 1),
                                  file: file, line: line)
                }
                guard k > 0 else { continue }
                let previous = contour[k - 1]
                XCTAssertLessThanOrEqual(previous.end.distance(to: paddle.start), 2 * m + eps, file: file, line: line)
                var turn = abs(paddle.angle - previous.angle)
                turn = min(turn, 2 * Double.pi - turn)
                XCTAssertLessThan(turn, p.maximumTurn + eps, file: file, line: line)
            }
        }
        // different contours keep 2m + thickness apart, so they never look joined
        for a in 0..<image.contours.count {
            for b in (a + 1)..<image.contours.count {
                for pa in image.contours[a] {
                    for pb in image.contours[b] {
                        XCTAssertGreaterThanOrEqual(pa.distance(to: pb), 2 * m + p.paddleThickness - eps, file: file, line: line)
                    }
                }
            }
        }
        // flood fill over all paddles (contour membership forgotten): each component is one contour, and the label
        // says whether the markers are the two free ends of one component
        let paddles = Array(image.contours.joined())
        let component = components(paddles, gap: 2 * m + eps)
        var owner: [Int] = []
        for (c, contour) in image.contours.enumerated() { owner += [Int](repeating: c, count: contour.count) }
        for i in 0..<paddles.count {
            for j in 0..<paddles.count {
                XCTAssertEqual(component[i] == component[j], owner[i] == owner[j], file: file, line: line)
            }
        }
        func endpoint(_ q: ImagePoint) -> (paddle: Int, isStart: Bool)? {
            for (i, paddle) in paddles.enumerated() {
                if paddle.start.distance(to: q) < 1e-12 { return (i, true) }
                if paddle.end.distance(to: q) < 1e-12 { return (i, false) }
            }
            return nil
        }
        guard let a = endpoint(image.markers[0]), let b = endpoint(image.markers[1]) else {
            return XCTFail("a marker is not on a paddle's tip", file: file, line: line)
        }
        XCTAssertEqual(image.label == 1, component[a.paddle] == component[b.paddle], file: file, line: line)
        XCTAssertTrue(owner[a.paddle] < 2 && owner[b.paddle] < 2, "markers must sit on target contours", file: file, line: line)
        // the markers are free ends: a contour's first start and last end
        XCTAssertTrue(a.isStart && paddles[a.paddle] == image.contours[owner[a.paddle]].first!, file: file, line: line)
        XCTAssertTrue(!b.isStart && paddles[b.paddle] == image.contours[owner[b.paddle]].last!, file: file, line: line)
        // the rendering: markers are bright discs, every paddle leaves ink at its midpoint
        for q in image.markers {
            XCTAssertEqual(image.pixels[Int(q.y.rounded()) * p.imageSize + Int(q.x.rounded())], 255, file: file, line: line)
        }
        for paddle in paddles {
            let y = Int(((paddle.start.y + paddle.end.y) / 2).rounded()), x = Int(((paddle.start.x + paddle.end.x) / 2).rounded())
            XCTAssertGreaterThan(image.pixels[y * p.imageSize + x], 0, file: file, line: line)
        }
        XCTAssertGreaterThan(image.pixels.filter { $0 == 0 }.count, image.pixels.count / 2, "mostly background", file: file, line: line)
    }

    func testImagesOfEveryDifficultyAt32PixelsObeyTheRules() throws {
        for contourLength in [6, 9, 14] {
            let p = try PathfinderParameters.lra(imageSize: 32, contourLength: contourLength)
            let generator = PathfinderGenerator(p)
            var labels = [0, 0]
            for i in 0..<(contourLength == 14 ? 40 : 15) {
                var rng = exampleGenerator(seed: 11, split: "check\(contourLength)", index: i)
                let image = generator.sample(&rng)
                Self.check(image, p)
                labels[image.label] += 1
            }
            XCTAssertTrue(labels[0] > 0 && labels[1] > 0, "both labels occur: \(labels)")
        }
    }

    func testLargerImagesAndPathX() throws {
        for size in [64, 128] {
            let p = try PathfinderParameters.lra(imageSize: size, contourLength: 14)
            for i in 0..<2 {
                var rng = exampleGenerator(seed: 2, split: "large", index: i)
                Self.check(PathfinderGenerator(p).sample(&rng), p)
            }
        }
        let pathX = try TaskRegistry.make("pathfinder", options: Options(["image_size": "128", "train_size": "2"]), seed: 1)
        XCTAssertEqual(pathX.train.example(0).tokens.count, 16384)
        assertUserError("image_size 48") { _ = try TaskRegistry.make("pathfinder", options: Options(["image_size": "48"])) }
        assertUserError("contour_length 1") { _ = try TaskRegistry.make("pathfinder", options: Options(["contour_length": "1"])) }
    }

    func testTaskExamplesAreTheFlattenedImagesAndDeterministic() throws {
        let task = try TaskRegistry.make("pathfinder", seed: 4)
        checkInvariants(task, count: 3)
        XCTAssertEqual(task.inputVocabulary, 257)
        XCTAssertEqual(task.padToken, 256)
        let e = task.train.example(0)
        XCTAssertEqual(e.tokens.count, 1024)
        var rng = exampleGenerator(seed: 4, split: "train", index: 0)
        let image = PathfinderGenerator(try PathfinderParameters.lra(imageSize: 32, contourLength: 14)).sample(&rng)
        XCTAssertEqual(e.tokens, image.pixels.map { Int($0) })
        XCTAssertEqual(e.label, image.label)
        try checkDeterminism("pathfinder", count: 2)
    }

    func testPGMRoundTripAndImageFiles() throws {
        let dir = try temporaryDirectory(self)
        let task = try TaskRegistry.make("pathfinder", options: Options(["contour_length": "6"]), seed: 9)
        let files = try PathfinderTask.writeImages(of: task.train, count: 3, side: 32, to: dir.appendingPathComponent("images"))
        XCTAssertEqual(files.count, 3)
        for (i, url) in files.enumerated() {
            let e = task.train.example(i)
            XCTAssertTrue(url.lastPathComponent.hasSuffix("label\(e.label).pgm"))
            let decoded = try PGM.decode([UInt8](try Data(contentsOf: url)))
            XCTAssertEqual(decoded.width, 32)
            XCTAssertEqual(decoded.height, 32)
            XCTAssertEqual(decoded.pixels.map { Int($0) }, e.tokens)
        }
        assertUserError("token 300") { try PGM.write(tokens: [300], width: 1, height: 1, to: dir.appendingPathComponent("x.pgm")) }
        assertUserError("do not fill") { try PGM.write(tokens: [1, 2], width: 1, height: 1, to: dir.appendingPathComponent("x.pgm")) }
        assertUserError("pixel bytes") { _ = try PGM.decode(Array("P5\n2 2\n255\n".utf8) + [1, 2, 3]) }
        assertUserError("not a binary PGM") { _ = try PGM.decode(Array("P2\n1 1\n255\n0".utf8)) }
    }
}

extension PathfinderTests {
    func testInfeasibleContourLengthsAreDetected() throws {
        var p = try PathfinderParameters.lra(imageSize: 32, contourLength: 60)
        var rng = RandomGenerator(seed: 1)
        XCTAssertNil(PathfinderGenerator(p).sample(&rng, attempts: 20), "60 paddles cannot fit twice in 32 x 32")
        p.contourLength = 6
        XCTAssertNotNil(PathfinderGenerator(p).sample(&rng, attempts: 1000))
    }
}
