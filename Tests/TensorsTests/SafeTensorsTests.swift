import Foundation
import XCTest

@testable import Tensors

final class SafeTensorsTests: XCTestCase {
    private var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("safetensors-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: dir)
    }

    /// A file from a header string (unpadded) and raw data bytes.
    private func raw(_ header: String, _ data: [UInt8] = []) -> [UInt8] {
        let h = Array(header.utf8)
        return withUnsafeBytes(of: UInt64(h.count).littleEndian, Array.init) + h + data
    }

    /// Asserts that parsing `bytes` fails with a SafeTensorsError whose message contains every fragment.
    private func assertRejects(
        _ bytes: [UInt8], _ fragments: String..., file: StaticString = #filePath, line: UInt = #line
    ) {
        do {
            _ = try SafeTensors(bytes: bytes, source: "test.safetensors")
            XCTFail("parsed malformed input without error", file: file, line: line)
        } catch let error as SafeTensorsError {
            let message = error.description
            XCTAssertTrue(message.hasPrefix("test.safetensors: "), message, file: file, line: line)
            XCTAssertFalse(message.contains("\n"), "message spans lines: \(message)", file: file, line: line)
            for f in fragments {
                XCTAssertTrue(message.contains(f), "'\(message)' does not mention '\(f)'", file: file, line: line)
            }
        } catch {
            XCTFail("wrong error type: \(error)", file: file, line: line)
        }
    }

    /// A collection with every dtype, a scalar, an empty tensor, special floats and awkward names/metadata.
    private func sample() throws -> SafeTensors {
        var st = SafeTensors(metadata: ["format": "pt", "note": "quote \" backslash \\ newline \n tab \t ü ∑ \u{1}"])
        st.set("layer.weight", Tensor<Float>(shape: [2, 3], data: [1, -2.5, 3e-8, .infinity, -0.0, .greatestFiniteMagnitude]))
        st.set("layer.bias", Tensor<Double>(shape: [3], data: [0.1, -1e300, .leastNonzeroMagnitude]))
        st.set("scalar", Tensor<Double>(scalar: 42.5))
        st.set("empty", Tensor<Float>(shape: [0, 3], data: []))
        st.set("nan", Tensor<Float>(shape: [1], data: [.nan]))
        st.set("naïve \"name\"", Tensor<Float>(shape: [1, 1, 1], data: [7]))
        try st.setIntegers("tokens", [Int(Int32.min), -1, 0, Int(Int32.max)], shape: [2, 2], dtype: .i32)
        try st.setIntegers("steps", [Int.min, -3, Int.max], shape: [3])
        try st.setIntegers("count", [5], shape: [])
        return st
    }

    func testRoundTripAllDtypesThroughFile() throws {
        let st = try sample()
        XCTAssertEqual(st.dtypes, [.f32, .f64, .i32, .i64])
        let url = dir.appendingPathComponent("model.safetensors")
        try st.write(to: url)
        let back = try SafeTensors.read(from: url)
        XCTAssertEqual(back.arrays, st.arrays)
        XCTAssertEqual(back.metadata, st.metadata)
        XCTAssertEqual(back.dtypes, [.f32, .f64, .i32, .i64])

        let w = try back.tensor("layer.weight", as: Float.self)
        XCTAssertEqual(w.shape, [2, 3])
        XCTAssertEqual(w.data.map(\.bitPattern), [1, -2.5, 3e-8, .infinity, -0.0, .greatestFiniteMagnitude].map { (x: Float) in x.bitPattern })
        XCTAssertEqual(try back.tensor("layer.bias", as: Double.self).data, [0.1, -1e300, .leastNonzeroMagnitude])
        let s = try back.tensor("scalar", as: Double.self)
        XCTAssertEqual(s.shape, [])
        XCTAssertEqual(s.item, 42.5)
        let e = try back.tensor("empty", as: Float.self)
        XCTAssertEqual(e.shape, [0, 3])
        XCTAssertEqual(e.count, 0)
        XCTAssertEqual(back.arrays["empty"]?.bytes, [])
        XCTAssertTrue(try back.tensor("nan", as: Float.self).data[0].isNaN)
        XCTAssertEqual(try back.tensor("naïve \"name\"", as: Float.self).data, [7])
        XCTAssertEqual(try back.integers("tokens"), [Int(Int32.min), -1, 0, Int(Int32.max)])
        XCTAssertEqual(back.arrays["tokens"]?.dtype, .i32)
        XCTAssertEqual(back.arrays["tokens"]?.shape, [2, 2])
        XCTAssertEqual(try back.integers("steps"), [Int.min, -3, Int.max])
        XCTAssertEqual(back.arrays["steps"]?.dtype, .i64)
        XCTAssertEqual(try back.integers("count"), [5])
        XCTAssertEqual(back.arrays["count"]?.shape, [])
        XCTAssertEqual(try back.serialized(), try st.serialized(), "serialization is deterministic")
    }

    func testHeaderPaddedAndDataContiguousWiderDtypesFirst() throws {
        for extra in 0..<9 {
            var st = try sample()
            st.metadata["pad"] = String(repeating: "x", count: extra)
            let bytes = [UInt8](try st.serialized())
            let n = bytes[0..<8].reversed().reduce(0) { $0 << 8 | Int($1) }
            XCTAssertEqual(n % 8, 0, "header length \(n)")
            let header = try XCTUnwrap(String(bytes: bytes[8..<(8 + n)], encoding: .utf8))
            XCTAssertTrue(header.hasPrefix("{"))
            let body = header.trimmingCharacters(in: .whitespaces)
            XCTAssertTrue(body.hasSuffix("}") && header.hasPrefix(body))
            XCTAssertTrue(header.dropFirst(body.count).allSatisfy { $0 == " " }, "padding is spaces")
            XCTAssertLessThan(header.utf8.count - body.utf8.count, 8)
            // Offsets tile the data section, wider dtypes first, then by name; every array is aligned to its element size.
            let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(bytes[8..<(8 + n)])) as? [String: Any])
            var expected = 0
            XCTAssertEqual(st.dataOrder, st.names.sorted { (st.arrays[$0]!.dtype.byteSize, $1) > (st.arrays[$1]!.dtype.byteSize, $0) })
            for name in st.dataOrder {
                XCTAssertEqual(expected % st.arrays[name]!.dtype.byteSize, 0, "\(name) is aligned")
                let offsets = try XCTUnwrap((json[name] as? [String: Any])?["data_offsets"] as? [Int])
                XCTAssertEqual(offsets, [expected, expected + st.arrays[name]!.bytes.count], name)
                expected = offsets[1]
            }
            XCTAssertEqual(bytes.count, 8 + n + expected)
        }
    }

    func testTinyFileMatchesHandComputedBytes() throws {
        var st = SafeTensors(metadata: ["k": "v"])
        st.set("a", Tensor<Float>(shape: [2], data: [1, -2]))
        try st.setIntegers("b", [-5], shape: [], dtype: .i32)
        let json = #"{"__metadata__":{"k":"v"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"#
            + #""b":{"dtype":"I32","shape":[],"data_offsets":[8,12]}}"#
        XCTAssertEqual(json.utf8.count, 132)
        let expected: [UInt8] = [0x88, 0, 0, 0, 0, 0, 0, 0] + Array(json.utf8) + [0x20, 0x20, 0x20, 0x20]
            + [0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x00, 0xC0]  // 1.0f, -2.0f
            + [0xFB, 0xFF, 0xFF, 0xFF]  // Int32(-5)
        XCTAssertEqual([UInt8](try st.serialized()), expected)
    }

    func testFloatConversionsOnRead() throws {
        var st = SafeTensors()
        let floats: [Float] = [0.1, -3.75, 1e-30, 65504]
        st.set("f", Tensor<Float>(shape: [2, 2], data: floats))
        st.set("d", Tensor<Double>(shape: [2], data: [0.1, 1e40]))
        try st.setIntegers("i", [3, -7], shape: [2], dtype: .i32)
        try st.setIntegers("l", [1 << 40, -2], shape: [1, 2])
        let back = try SafeTensors(bytes: [UInt8](try st.serialized()))
        let asDouble = try back.tensor("f", as: Double.self)
        XCTAssertEqual(asDouble.shape, [2, 2])
        XCTAssertEqual(asDouble.data, floats.map { Double($0) })
        XCTAssertNotEqual(asDouble.data[0], 0.1, "F32 precision, not the decimal literal")
        let asFloat = try back.tensor("d", as: Float.self).data
        XCTAssertEqual(asFloat[0], Float(0.1))
        XCTAssertEqual(asFloat[1], .infinity)
        XCTAssertEqual(try back.tensor("i", as: Float.self).data, [3, -7])
        XCTAssertEqual(try back.tensor("l", as: Double.self).data, [Double(1 << 40), -2])
        XCTAssertEqual(try SafeTensors.parse(data: try st.serialized()).arrays, st.arrays)
    }

    func testTruncatedFilesAreRejected() throws {
        let bytes = [UInt8](try sample().serialized())
        let n = bytes[0..<8].reversed().reduce(0) { $0 << 8 | Int($1) }
        for cut in [0, 1, 7] { assertRejects(Array(bytes.prefix(cut)), "\(cut) bytes", "shorter than the 8-byte") }
        for cut in [8, 9, 8 + n / 2, 8 + n - 1] {
            assertRejects(Array(bytes.prefix(cut)), "header length \(n)", "larger than the \(cut - 8) bytes")
        }
        for cut in [8 + n, 8 + n + 1, bytes.count - 1] {
            assertRejects(Array(bytes.prefix(cut)), "data_offsets", "outside the data section (\(cut - 8 - n) bytes)")
        }
        XCTAssertNoThrow(try SafeTensors(bytes: bytes))
    }

    func testHeaderLengthAndEncodingErrors() {
        let absurd = withUnsafeBytes(of: UInt64(200_000_000).littleEndian, Array.init) + [UInt8](repeating: 0x20, count: 16)
        assertRejects(absurd, "header length 200000000", "absurd")
        assertRejects([0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7B, 0x7D], "absurd")
        assertRejects(raw("{\"a\u{FF}\": 1}").map { $0 == 0xC3 ? 0xFF : $0 }, "not valid UTF-8")
        assertRejects(raw(#"{"a": {"dtype": "F32",, }"#), "not valid JSON")
        assertRejects(raw(""), "not valid JSON")
        assertRejects(raw("[1, 2]  "), "not an object")
        assertRejects(raw("\"just a string\""), "not an object")
        // A valid file with one header byte corrupted.
        var corrupt = [UInt8](try! sample().serialized())
        corrupt[8] = UInt8(ascii: "#")
        assertRejects(corrupt, "not valid JSON")
    }

    func testEntryErrors() {
        let four: [UInt8] = [0, 0, 128, 63]
        assertRejects(raw(#"{"w": [1]}"#), "tensor 'w'", "not an object")
        assertRejects(raw(#"{"w": {"shape": [1], "data_offsets": [0, 4]}}"#, four), "tensor 'w'", "missing \"dtype\"")
        assertRejects(raw(#"{"w": {"dtype": "F32", "data_offsets": [0, 4]}}"#, four), "missing \"shape\"")
        assertRejects(raw(#"{"w": {"dtype": "F32", "shape": [1]}}"#, four), "missing \"data_offsets\"")
        assertRejects(raw(#"{"w": {"dtype": 32, "shape": [1], "data_offsets": [0, 4]}}"#, four), "\"dtype\" is not a string")
        assertRejects(raw(#"{"w": {"dtype": "F32", "shape": "1", "data_offsets": [0, 4]}}"#, four), "\"shape\" is not an array of integers")
        assertRejects(raw(#"{"w": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 4]}}"#, four), "\"shape\" is not")
        assertRejects(raw(#"{"w": {"dtype": "F32", "shape": [1.0], "data_offsets": [0, 4]}}"#, four), "\"shape\" is not")
        assertRejects(raw(#"{"w": {"dtype": "F32", "shape": [true], "data_offsets": [0, 4]}}"#, four), "\"shape\" is not")
        assertRejects(raw(#"{"w": {"dtype": "F32", "shape": ["1"], "data_offsets": [0, 4]}}"#, four), "\"shape\" is not")
        assertRejects(raw(#"{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4, 8]}}"#, four), "\"data_offsets\" is not an array of two integers")
        assertRejects(raw(#"{"w": {"dtype": "F32", "shape": [1], "data_offsets": 4}}"#, four), "\"data_offsets\" is not")
        assertRejects(raw(#"{"w": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}}"#, four), "tensor 'w'", "unknown dtype \"BF16\"")
        assertRejects(raw(#"{"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}"#, four), "tensor 'w'", "negative extent")
        assertRejects(raw(#"{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}"#, four), "tensor 'w'", "span 4 bytes", "needs 8")
        assertRejects(raw(#"{"w": {"dtype": "F64", "shape": [1], "data_offsets": [0, 4]}}"#, four), "needs 8")
        assertRejects(raw(#"{"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}"#, four), "[4, 8]", "outside the data section (4 bytes)")
        assertRejects(raw(#"{"w": {"dtype": "F32", "shape": [1], "data_offsets": [-4, 0]}}"#, four), "outside the data section")
        assertRejects(raw(#"{"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}}"#, four), "outside the data section")
        assertRejects(raw(#"{"w": {"dtype": "F32", "shape": [4611686018427387904, 4], "data_offsets": [0, 4]}}"#, four), "too large")
        assertRejects(raw(#"{"__metadata__": {"k": 1}}"#), "metadata value for 'k' is not a string")
        assertRejects(raw(#"{"__metadata__": ["k"]}"#), "\"__metadata__\" is not an object")
        XCTAssertNoThrow(try SafeTensors(bytes: raw(#"{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}"#, four)))
    }

    func testLookupAndFileErrors() throws {
        let st = try sample()
        XCTAssertThrowsError(try st.tensor("missing", as: Float.self)) { error in
            let message = "\(error)"
            XCTAssertTrue(message.contains("'missing'"), message)
            XCTAssertTrue(message.contains("'layer.weight'") && message.contains("'tokens'"), message)
        }
        XCTAssertThrowsError(try st.integers("layer.bias")) { XCTAssertTrue("\($0)".contains("F64, not I32 or I64"), "\($0)") }
        XCTAssertThrowsError(try SafeTensors().integers("x")) { XCTAssertTrue("\($0)".contains("present: none"), "\($0)") }

        let missing = dir.appendingPathComponent("nope.safetensors")
        XCTAssertThrowsError(try SafeTensors.read(from: missing)) { error in
            XCTAssertTrue(error is SafeTensorsError)
            XCTAssertTrue("\(error)".contains(missing.path) && "\(error)".contains("cannot read"), "\(error)")
        }
        let short = dir.appendingPathComponent("short.safetensors")
        try Data([1, 2, 3]).write(to: short)
        XCTAssertThrowsError(try SafeTensors.read(from: short)) { XCTAssertTrue("\($0)".hasPrefix(short.path + ": file is 3 bytes"), "\($0)") }
    }

    func testWriterErrors() throws {
        var st = SafeTensors()
        XCTAssertThrowsError(try st.setIntegers("x", [1, 2, 3], shape: [2, 2])) { XCTAssertTrue("\($0)".contains("3 values"), "\($0)") }
        XCTAssertThrowsError(try st.setIntegers("x", [1 << 40], shape: [1], dtype: .i32)) { XCTAssertTrue("\($0)".contains("I32"), "\($0)") }
        XCTAssertThrowsError(try st.setIntegers("x", [1], shape: [1], dtype: .f32)) { XCTAssertTrue("\($0)".contains("F32"), "\($0)") }
        XCTAssertTrue(st.arrays.isEmpty)
        st.arrays["bad"] = StoredArray(dtype: .f32, shape: [2], bytes: [0, 0, 0])
        XCTAssertThrowsError(try st.serialized()) { XCTAssertTrue("\($0)".contains("tensor 'bad': 3 bytes"), "\($0)") }
        XCTAssertThrowsError(try st.tensor("bad", as: Float.self))
        st.arrays["bad"] = nil
        st.set("__metadata__", Tensor<Float>(scalar: 1))
        XCTAssertThrowsError(try st.serialized()) { XCTAssertTrue("\($0)".contains("reserved"), "\($0)") }
    }

    func testAtomicWriteLeavesNoTempFile() throws {
        let url = dir.appendingPathComponent("ckpt.safetensors")
        var st = try sample()
        try st.write(to: url)
        st.metadata["step"] = "2"
        try st.write(to: url)  // replaces the existing file
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["ckpt.safetensors"])
        XCTAssertEqual(try SafeTensors.read(from: url).metadata["step"], "2")
        XCTAssertEqual(try Data(contentsOf: url), try st.serialized())

        let nowhere = dir.appendingPathComponent("no-such-dir/ckpt.safetensors")
        XCTAssertThrowsError(try st.write(to: nowhere)) { XCTAssertTrue("\($0)".contains(nowhere.path), "\($0)") }
        st.arrays["bad"] = StoredArray(dtype: .i64, shape: [1], bytes: [1])
        XCTAssertThrowsError(try st.write(to: url))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["ckpt.safetensors"])
        XCTAssertEqual(try SafeTensors.read(from: url).metadata["step"], "2", "a failed write keeps the old file")
    }

    func testNumpyReadsSwiftFile() throws {
        let url = dir.appendingPathComponent("np.safetensors")
        try sample().write(to: url)
        let script = """
            import json, struct, sys
            try:
                import numpy as np
            except ImportError:
                sys.exit(77)
            raw = open(sys.argv[1], "rb").read()
            (n,) = struct.unpack("<Q", raw[:8])
            assert n % 8 == 0, n
            header = json.loads(raw[8:8 + n].decode("utf-8"))
            data = raw[8 + n:]
            kinds = {"F32": "<f4", "F64": "<f8", "I32": "<i4", "I64": "<i8"}
            def get(name):
                e = header[name]
                b, end = e["data_offsets"]
                return np.frombuffer(data[b:end], dtype=kinds[e["dtype"]]).reshape(e["shape"])
            assert header["__metadata__"]["format"] == "pt"
            assert header["__metadata__"]["note"].startswith('quote " backslash \\\\ newline \\n')
            w = get("layer.weight")
            assert w.shape == (2, 3) and w.dtype == np.float32, (w.shape, w.dtype)
            assert w[0, 1] == -2.5 and np.isinf(w[1, 0]) and np.signbit(w[1, 1]), w
            assert get("layer.bias").tolist() == [0.1, -1e300, 5e-324], get("layer.bias")
            assert get("scalar").shape == () and float(get("scalar")) == 42.5
            assert get("empty").shape == (0, 3)
            assert np.isnan(get("nan")[0])
            assert get('naïve "name"').tolist() == [[[7.0]]]
            assert get("tokens").tolist() == [[-2**31, -1], [0, 2**31 - 1]]
            assert get("steps").tolist() == [-2**63, -3, 2**63 - 1]
            assert get("count").shape == () and int(get("count")) == 5
            ends = sorted(e["data_offsets"] for k, e in header.items() if k != "__metadata__")
            assert ends[-1][1] == len(data)
            print("ok", len(header) - 1)
            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")  // the python3 on PATH
        process.arguments = ["python3", "-c", script, url.path]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        if process.terminationStatus == 127 { throw XCTSkip("python3 not found: \(output)") }
        if process.terminationStatus == 77 { throw XCTSkip("numpy not installed") }
        XCTAssertEqual(process.terminationStatus, 0, output)
        XCTAssertEqual(output.trimmingCharacters(in: .whitespacesAndNewlines), "ok 9")
    }
}
