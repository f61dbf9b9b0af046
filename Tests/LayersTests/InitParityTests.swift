import Foundation
import XCTest
@testable import Layers
@testable import Tensors

/// Every layer's initial parameters against the distribution its real reference module draws (docs/init.md).
///
/// Tests/Fixtures/init/LAYER.json (scripts/fixtures/make_init_fixtures.py) summarises, per state_dict key, the values
/// of S reference inits (seeds 0..S-1) pooled: count, mean, std, min, max and the quantiles q01 ... q99. Each test
/// builds our layer S times (`LayerRegistry.make`, seeds 0..S-1, Float64) with the fixture's options and width, pools
/// each parameter and buffer the same way and compares (`InitStatistics.compare`): the same key set and shapes; a
/// constant reference tensor (std 0: norm weights, D, ...) equal; otherwise mean, std, quantiles and range within
/// tolerances that a common distribution meets with a wide margin and a wrong one (another bound or family) misses.
final class InitParityTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/init")

    /// One fixture file.
    struct Fixture: Decodable {
        let layer: String
        let options: [String: String]
        let d_model: Int
        let seeds: Int
        let reference: String
        let parameters: [String: InitStatistics.Summary]
        let other_keys: [String: NonFloating]

        /// A non-floating state_dict entry (S4's integer l_kernel): only its shape is compared.
        struct NonFloating: Decodable {
            let shape: [Int]
            let dtype: String
        }
    }

    static func fixture(_ layer: String) throws -> Fixture {
        let url = fixtures.appendingPathComponent(layer + ".json")
        return try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: url))
    }

    /// Our layer's state tensors (parameters and buffers) over the fixture's seeds: name -> (shape, pooled values).
    static func pooledInit(_ f: Fixture) throws -> [String: (shape: [Int], values: [Double])] {
        var pooled: [String: (shape: [Int], values: [Double])] = [:]
        for seed in 0..<f.seeds {
            let layer = try LayerRegistry.make(f.layer, dModel: f.d_model, options: LayerOptions(f.options),
                                               seed: UInt64(seed), as: Double.self)
            let tensors = layer.parameters.map { ($0.name, $0.tensor) } + layer.buffers.map { ($0.name, $0.tensor) }
            for (name, tensor) in tensors {
                pooled[name, default: (tensor.shape, [])].values += tensor.data
            }
        }
        return pooled
    }

    /// Compares every state tensor of `layer` with its fixture; one failure lists every mismatch, by parameter.
    func checkLayer(_ layer: String) throws {
        let f = try Self.fixture(layer)
        XCTAssertEqual(f.layer, layer)
        let ours = try Self.pooledInit(f)
        let referenceKeys = Set(f.parameters.keys).union(f.other_keys.keys)
        XCTAssertEqual(Set(ours.keys), referenceKeys, "\(layer): state_dict keys differ from \(f.reference)'s")
        var failures: [String] = []
        var worst = (key: "", check: "", ratio: 0.0)
        for (key, summary) in f.parameters.sorted(by: { $0.key < $1.key }) {
            guard let mine = ours[key] else { continue }
            guard mine.shape == summary.shape else {
                failures.append("\(key): shape \(mine.shape), reference \(summary.shape)"); continue
            }
            let result = InitStatistics.compare(mine.values, summary)
            failures += result.failures.map { "\(key): \($0)" }
            if let w = result.worst, w.ratio > worst.ratio { worst = (key, w.check, w.ratio) }
        }
        for (key, other) in f.other_keys where ours[key].map({ $0.shape != other.shape }) ?? false {
            failures.append("\(key): shape \(ours[key]!.shape), reference \(other.shape)")
        }
        XCTAssertTrue(failures.isEmpty, "\(layer) init differs from \(f.reference) (\(f.seeds) seeds, d_model \(f.d_model), "
                      + "options \(f.options)):\n  " + failures.joined(separator: "\n  "))
        print("init parity \(layer): \(f.parameters.count) tensors, largest deviation \(String(format: "%.2f", worst.ratio)) "
              + "of its tolerance (\(worst.key) \(worst.check))")
    }

    func testAttentionInit() throws { try checkLayer("attention") }
    func testS4Init() throws { try checkLayer("s4") }
    func testS4DInit() throws { try checkLayer("s4d") }
    func testMambaInit() throws { try checkLayer("mamba") }
    func testGLAInit() throws { try checkLayer("gla") }
    func testDeltaNetInit() throws { try checkLayer("deltanet") }
    func testDeltaProductInit() throws { try checkLayer("deltaproduct") }
    func testGatedDeltaNetInit() throws { try checkLayer("gated_deltanet") }
    func testRetNetInit() throws { try checkLayer("retnet") }
    func testHGRN2Init() throws { try checkLayer("hgrn2") }
    func testMamba2Init() throws { try checkLayer("mamba2") }
    func testFoxInit() throws { try checkLayer("fox") }
    func testMLSTMInit() throws { try checkLayer("mlstm") }
    func testRATInit() throws { try checkLayer("rat") }
    func testGAMInit() throws { try checkLayer("gam") }

    func testEveryRegisteredLayerHasAnInitFixture() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.fixtures.path).filter { $0.hasSuffix(".json") }
        XCTAssertEqual(Set(files.map { String($0.dropLast(".json".count)) }), Set(LayerRegistry.names).subtracting(["diagonal"]),
                       "every registered layer (but the worked example) has an init fixture and a test above")
    }

    /// The comparison tells the inits this issue had to fix from the right ones, on the fixture of a GLA projection
    /// (U(+-1/sqrt(16)), 4096 values): xavier-uniform with gain 2^-2.5, N(0, 0.02^2), and a bound 10% too wide fail;
    /// fresh draws of the right distribution pass (at several seeds).
    func testComparisonRejectsWrongDistributions() throws {
        let summary = try XCTUnwrap(try Self.fixture("gla").parameters["q_proj.weight"])
        XCTAssertEqual(summary.shape, [8, 16])
        let bound = 0.25, n = summary.count
        for seed in 1...4 {
            var rng = RandomGenerator(seed: UInt64(1000 + seed))
            let right = Tensor<Double>.uniform([n], low: -bound, high: bound, using: &rng).data
            XCTAssertEqual(InitStatistics.compare(right, summary).failures, [], "U(+-1/4), seed \(seed)")
            let xavier = 0.176_776_695_296_636_9 * (6.0 / (16 + 8)).squareRoot()
            let wrong: [(String, [Double])] = [
                ("xavier gain 2^-2.5", Tensor<Double>.uniform([n], low: -xavier, high: xavier, using: &rng).data),
                ("N(0, 0.02^2)", Tensor<Double>.randn([n], std: 0.02, using: &rng).data),
                ("N(0, 1/48)", Tensor<Double>.randn([n], std: (1.0 / 48).squareRoot(), using: &rng).data),  // same variance
                ("U(+-1.1/4)", Tensor<Double>.uniform([n], low: -1.1 * bound, high: 1.1 * bound, using: &rng).data),
                ("U(0, 1/4)", Tensor<Double>.uniform([n], low: 0, high: bound, using: &rng).data),
            ]
            for (name, values) in wrong {
                XCTAssertFalse(InitStatistics.compare(values, summary).failures.isEmpty, "\(name) passed, seed \(seed)")
            }
        }
        let zeros = [Double](repeating: 0, count: n)
        XCTAssertFalse(InitStatistics.compare(zeros, summary).failures.isEmpty, "zeros passed")
    }
}

/// Two-sample comparison of a pooled init (ours, m values) with a reference summary (n values), distribution-free
/// where it can be, with z = 5 standard errors (a common distribution fails a check about once in 10^6):
///   constant reference (std <= 1e-12 |mean|)   every value equal to it (relative 1e-9)
///   mean      |mean - mean_ref| <= z sqrt(std_ref^2 / n + std^2 / m)
///   std       |std / std_ref - 1| <= z sqrt((kurtosis - 1) / 4 (1/n + 1/m)) + 2%  (the standard error of a sample
///             std, with our sample's kurtosis; the 2% covers values correlated within one init, such as S4's C)
///   quantiles for p in 1, 10, 50, 90, 99%: the fraction of our values below the reference's quantile q_p is p within
///             z sqrt(p (1 - p) (1/n + 1/m)) + 1/m (Kolmogorov-Smirnov at five points: no density needed, and atoms
///             such as deterministic eigenvalues are handled by counting below and at q_p separately)
///   range     at most 20 (m / n) of our values below the reference's min or above its max, each side (for a common
///             continuous distribution about m / n are expected, 20 or more with probability ~1e-6): a bounded
///             distribution must stay in the reference's bounds.
/// Value comparisons allow a relative 1e-9 (values the reference rounds through float32 allow 1e-6).
enum InitStatistics {
    /// The reference's pooled statistics of one state_dict tensor (make_init_fixtures.py `statistics`).
    struct Summary: Decodable {
        let shape: [Int]
        let count: Int
        let mean, std, min, max: Double
        let q01, q10, q50, q90, q99: Double

        var quantiles: [(p: Double, value: Double)] { [(0.01, q01), (0.10, q10), (0.50, q50), (0.90, q90), (0.99, q99)] }
    }

    static let z = 5.0

    /// The failed checks (empty: the same distribution), and the check closest to its tolerance as a ratio.
    static func compare(_ values: [Double], _ ref: Summary) -> (failures: [String], worst: (check: String, ratio: Double)?) {
        let m = Double(values.count), n = Double(ref.count)
        guard !values.isEmpty else { return (["no values"], nil) }
        let scale = Swift.max(abs(ref.mean), ref.std, abs(ref.min), abs(ref.max), 1e-300)
        let eps = 1e-6 * scale
        var failures: [String] = []
        var worst: (check: String, ratio: Double)?
        func check(_ name: String, _ deviation: Double, _ tolerance: Double, _ message: @autoclosure () -> String) {
            let ratio = deviation / tolerance
            if !(ratio <= 1) { failures.append("\(name) \(message())") }
            if ratio > (worst?.ratio ?? -1) { worst = (name, ratio) }
        }
        if ref.std <= 1e-12 * scale {
            let off = values.map { abs($0 - ref.mean) }.max()!
            check("constant", off, 1e-9 * scale, "\(fmt(ref.mean)) in the reference, ours differs by up to \(fmt(off))")
            return (failures, worst)
        }
        let mean = values.reduce(0, +) / m
        let variance = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / m
        let std = variance.squareRoot()
        let fourth = values.reduce(0) { $0 + pow($1 - mean, 4) } / m
        let kurtosis = variance > 0 ? fourth / (variance * variance) : 1
        let meanTol = z * (ref.std * ref.std / n + variance / m).squareRoot() + 1e-9 * scale
        check("mean", abs(mean - ref.mean), meanTol, "\(fmt(mean)), reference \(fmt(ref.mean)) (tolerance \(fmt(meanTol)))")
        let stdTol = z * ((Swift.max(kurtosis, 1) - 1) / 4 * (1 / n + 1 / m)).squareRoot() + 0.02
        check("std", abs(std / ref.std - 1), stdTol,
              "\(fmt(std)), reference \(fmt(ref.std)) (relative tolerance \(fmt(stdTol)))")
        for (p, q) in ref.quantiles {
            let below = Double(values.filter { $0 < q - eps }.count) / m    // F(q-)
            let atOrBelow = Double(values.filter { $0 <= q + eps }.count) / m  // F(q)
            let tol = z * (p * (1 - p) * (1 / n + 1 / m)).squareRoot() + 1 / m
            let deviation = Swift.max(below - p, p - atOrBelow, 0)
            check("q\(Int((p * 100).rounded()))", deviation, tol,
                  "\(fmt(q)) in the reference: \(fmt(below))-\(fmt(atOrBelow)) of ours below it, expected \(p) +- \(fmt(tol))")
        }
        let allowed = 20 * Swift.max(1, m / n)
        let under = Double(values.filter { $0 < ref.min - eps }.count), over = Double(values.filter { $0 > ref.max + eps }.count)
        check("min", under, allowed, "\(Int(under)) of ours below the reference's min \(fmt(ref.min)) (ours \(fmt(values.min()!)))")
        check("max", over, allowed, "\(Int(over)) of ours above the reference's max \(fmt(ref.max)) (ours \(fmt(values.max()!)))")
        return (failures, worst)
    }

    static func fmt(_ x: Double) -> String { String(format: "%.4g", x) }
}
