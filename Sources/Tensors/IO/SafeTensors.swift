import Foundation

/// The element types a safetensors file may hold here.
public enum DType: String, CaseIterable, Sendable {
    case f32 = "F32", f64 = "F64", i32 = "I32", i64 = "I64"

    /// Bytes per element.
    public var byteSize: Int { self == .f32 || self == .i32 ? 4 : 8 }
}

/// One stored array: dtype, shape, raw little-endian bytes (`elementCount(shape) * dtype.byteSize` of them).
public struct StoredArray: Equatable, Sendable {
    /// The element type.
    public var dtype: DType
    /// The extent of each axis, outermost first ([] for a scalar).
    public var shape: [Int]
    /// The elements, row-major, little-endian.
    public var bytes: [UInt8]

    /// An array from its parts (not validated here; `serialized()` checks the byte count).
    public init(dtype: DType, shape: [Int], bytes: [UInt8]) {
        self.dtype = dtype
        self.shape = shape
        self.bytes = bytes
    }
}

/// A failed read, write or lookup, as one line naming the file or tensor and the problem.
public struct SafeTensorsError: Error, CustomStringConvertible {
    /// The one-line explanation.
    public let message: String
    /// An error with this message.
    public init(_ message: String) { self.message = message }
    /// The message.
    public var description: String { message }
}

/// The safetensors format: an 8-byte little-endian header length N, N bytes of JSON, then the raw data.
///
/// The JSON maps each tensor name to `{"dtype", "shape", "data_offsets": [begin, end]}` (offsets relative to
/// the data section), plus an optional `"__metadata__"` object of strings. Files written here lay the data
/// out contiguously (wider dtypes first, then by name) and pad the header with spaces to a multiple of 8 bytes.
public struct SafeTensors {
    /// The arrays by name.
    public var arrays: [String: StoredArray]
    /// The free-form string metadata (`"__metadata__"`).
    public var metadata: [String: String]

    /// The header length beyond which a file is rejected as corrupt.
    static let maxHeaderLength: UInt64 = 100_000_000

    /// A collection from its arrays and metadata.
    public init(arrays: [String: StoredArray] = [:], metadata: [String: String] = [:]) {
        self.arrays = arrays
        self.metadata = metadata
    }

    /// The dtypes present.
    public var dtypes: Set<DType> { Set(arrays.values.map(\.dtype)) }

    /// The tensor names, sorted.
    public var names: [String] { arrays.keys.sorted() }

    /// The metadata without safetensors' own `format` tag (PyTorch's `save_file`/`save_model` may write "pt"): what
    /// `seqlab op` and `seqlab layer` read as options.
    public var optionMetadata: [String: String] { metadata.filter { $0.key != "format" } }

    /// Reads and validates the file at `url`.
    public static func read(from url: URL) throws -> SafeTensors {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw SafeTensorsError("\(url.path): cannot read file (\(reason(error)))")
        }
        return try SafeTensors(bytes: [UInt8](data), source: url.path)
    }

    /// Parses and validates a serialized file; `source` names it in error messages.
    public init(bytes: [UInt8], source: String = "safetensors data") throws {
        func fail(_ s: String) -> SafeTensorsError { SafeTensorsError("\(source): \(s)") }
        guard bytes.count >= 8 else {
            throw fail("file is \(bytes.count) bytes, shorter than the 8-byte header length")
        }
        var n: UInt64 = 0
        for i in 0..<8 { n |= UInt64(bytes[i]) << (8 * UInt64(i)) }
        guard n <= Self.maxHeaderLength else { throw fail("header length \(n) is absurd (over 100 MB)") }
        guard n <= UInt64(bytes.count - 8) else {
            throw fail("header length \(n) is larger than the \(bytes.count - 8) bytes after the length field")
        }
        let headerEnd = 8 + Int(n)
        let headerBytes = Data(bytes[8..<headerEnd])
        guard String(data: headerBytes, encoding: .utf8) != nil else { throw fail("header is not valid UTF-8") }
        let json: Any
        do { json = try JSONSerialization.jsonObject(with: headerBytes, options: [.fragmentsAllowed]) } catch {
            throw fail("header is not valid JSON (\(reason(error)))")
        }
        guard let object = json as? [String: Any] else { throw fail("header JSON is not an object") }

        let dataSize = bytes.count - headerEnd
        var arrays: [String: StoredArray] = [:]
        var metadata: [String: String] = [:]
        for (name, value) in object {
            if name == "__metadata__" {
                guard let m = value as? [String: Any] else { throw fail("\"__metadata__\" is not an object") }
                for (k, v) in m {
                    guard let s = v as? String else { throw fail("metadata value for '\(k)' is not a string") }
                    metadata[k] = s
                }
                continue
            }
            let t = "tensor '\(name)'"
            guard let entry = value as? [String: Any] else { throw fail("\(t): entry is not an object") }
            func field<V>(_ key: String, _ convert: (Any) -> V?, _ kind: String) throws -> V {
                guard let raw = entry[key] else { throw fail("\(t): missing \"\(key)\"") }
                guard let v = convert(raw) else { throw fail("\(t): \"\(key)\" is not \(kind)") }
                return v
            }
            let dtypeName = try field("dtype", { $0 as? String }, "a string")
            guard let dtype = DType(rawValue: dtypeName) else {
                let known = DType.allCases.map(\.rawValue).joined(separator: ", ")
                throw fail("\(t): unknown dtype \"\(dtypeName)\" (supported: \(known))")
            }
            let shape = try field("shape", integerArray, "an array of integers")
            guard shape.allSatisfy({ $0 >= 0 }) else { throw fail("\(t): negative extent in shape \(shape)") }
            let offsets = try field("data_offsets", { integerArray($0).flatMap { $0.count == 2 ? $0 : nil } },
                                    "an array of two integers")
            let (begin, end) = (offsets[0], offsets[1])
            guard begin >= 0, begin <= end, end <= dataSize else {
                throw fail("\(t): data_offsets [\(begin), \(end)] lie outside the data section (\(dataSize) bytes)")
            }
            guard let size = byteCount(shape, dtype) else { throw fail("\(t): shape \(shape) is too large") }
            guard end - begin == size else {
                throw fail("\(t): data_offsets [\(begin), \(end)] span \(end - begin) bytes, "
                    + "but shape \(shape) of \(dtype.rawValue) needs \(size)")
            }
            arrays[name] = StoredArray(
                dtype: dtype, shape: shape, bytes: Array(bytes[(headerEnd + begin)..<(headerEnd + end)]))
        }
        self.init(arrays: arrays, metadata: metadata)
    }

    /// Parses and validates a serialized file held in `data`.
    public static func parse(data: Data, source: String = "safetensors data") throws -> SafeTensors {
        try SafeTensors(bytes: [UInt8](data), source: source)
    }

    /// The file's bytes. Throws if an array's byte count disagrees with its shape or a name is reserved.
    public func serialized() throws -> Data {
        var fields: [String] = []
        if !metadata.isEmpty {
            let pairs = metadata.keys.sorted().map { "\(jsonString($0)):\(jsonString(metadata[$0]!))" }
            fields.append("\"__metadata__\":{\(pairs.joined(separator: ","))}")
        }
        var offset = 0
        for name in dataOrder {
            let a = arrays[name]!
            guard name != "__metadata__" else {
                throw SafeTensorsError("tensor name \"__metadata__\" is reserved for the metadata")
            }
            let size = try a.checkedCount(name) * a.dtype.byteSize
            let shape = a.shape.map(String.init).joined(separator: ",")
            fields.append(
                "\(jsonString(name)):{\"dtype\":\"\(a.dtype.rawValue)\",\"shape\":[\(shape)],"
                    + "\"data_offsets\":[\(offset),\(offset + size)]}")
            offset += size
        }
        var headerBytes = Array(("{" + fields.joined(separator: ",") + "}").utf8)
        headerBytes += [UInt8](repeating: 0x20, count: (8 - headerBytes.count % 8) % 8)

        var out = Data(capacity: 8 + headerBytes.count + offset)
        withUnsafeBytes(of: UInt64(headerBytes.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(contentsOf: headerBytes)
        for name in dataOrder { out.append(contentsOf: arrays[name]!.bytes) }
        return out
    }

    /// The order of the data section: wider dtypes first, then by name (as the reference writer does), so that
    /// every array starts at a multiple of its element size and PyTorch can map it without copying.
    var dataOrder: [String] {
        names.sorted { (arrays[$0]!.dtype.byteSize, $1) > (arrays[$1]!.dtype.byteSize, $0) }
    }

    /// Writes the file atomically (see `writeAtomically`).
    public func write(to url: URL) throws {
        let data = try serialized()
        do { try writeAtomically(data, to: url) } catch { throw SafeTensorsError("\(error)") }
    }

    /// Stores `tensor` under `name` as `T.dtypeName` (F32 or F64), replacing any array of that name.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public mutating func set<T: TensorScalar>(_ name: String, _ tensor: Tensor<T>) {
        let dtype: DType = DType(rawValue: T.dtypeName) ?? (MemoryLayout<T>.size == 4 ? .f32 : .f64)
        var bytes = [UInt8](repeating: 0, count: tensor.count * dtype.byteSize)
        bytes.withUnsafeMutableBytes { raw in
            for (i, x) in tensor.data.enumerated() {
                if dtype == .f32 {
                    raw.storeBytes(of: Float(x).bitPattern.littleEndian, toByteOffset: 4 * i, as: UInt32.self)
                } else {
                    raw.storeBytes(of: Double(x).bitPattern.littleEndian, toByteOffset: 8 * i, as: UInt64.self)
                }
            }
        }
        arrays[name] = StoredArray(dtype: dtype, shape: tensor.shape, bytes: bytes)
    }

    /// Stores integers under `name` as I32 or I64. Throws on a float dtype, a count that disagrees with
    /// `shape`, or a value out of range for I32.
    public mutating func setIntegers(_ name: String, _ values: [Int], shape: [Int], dtype: DType = .i64) throws {
        guard dtype == .i32 || dtype == .i64 else {
            throw SafeTensorsError("tensor '\(name)': setIntegers needs I32 or I64, not \(dtype.rawValue)")
        }
        guard shape.allSatisfy({ $0 >= 0 }), byteCount(shape, .i64).map({ $0 / 8 }) == values.count else {
            throw SafeTensorsError("tensor '\(name)': \(values.count) values do not fit shape \(shape)")
        }
        var bytes = [UInt8]()
        for v in values {
            guard dtype == .i64 || Int32(exactly: v) != nil else {
                throw SafeTensorsError("tensor '\(name)': value \(v) does not fit in I32")
            }
            if dtype == .i32 { withUnsafeBytes(of: Int32(v).littleEndian) { bytes += $0 } }
            else { withUnsafeBytes(of: Int64(v).littleEndian) { bytes += $0 } }
        }
        arrays[name] = StoredArray(dtype: dtype, shape: shape, bytes: bytes)
    }

    /// The array `name` as a `Tensor<T>`, converting F32, F64, I32 or I64 elements to `T`.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func tensor<T: TensorScalar>(_ name: String, as _: T.Type = T.self) throws -> Tensor<T> {
        let a = try array(name)
        let values = try (0..<a.checkedCount(name)).map { i -> T in
            switch a.dtype {
            case .f32: return T(Float(bitPattern: a.load(i, UInt32.self)))
            case .f64: return T(Double(bitPattern: a.load(i, UInt64.self)))
            case .i32: return T(a.load(i, Int32.self))
            case .i64: return T(a.load(i, Int64.self))
            }
        }
        return Tensor(shape: a.shape, data: values)
    }

    /// The elements of the I32 or I64 array `name`, row-major.
    public func integers(_ name: String) throws -> [Int] {
        let a = try array(name)
        guard a.dtype == .i32 || a.dtype == .i64 else {
            throw SafeTensorsError("tensor '\(name)' has dtype \(a.dtype.rawValue), not I32 or I64")
        }
        return try (0..<a.checkedCount(name)).map {
            a.dtype == .i32 ? Int(a.load($0, Int32.self)) : Int(a.load($0, Int64.self))
        }
    }

    /// The stored array `name`; the error lists the names present.
    public func array(_ name: String) throws -> StoredArray {
        guard let a = arrays[name] else {
            let present = names.isEmpty ? "none" : names.map { "'\($0)'" }.joined(separator: ", ")
            throw SafeTensorsError("no tensor named '\(name)' (present: \(present))")
        }
        return a
    }
}

// MARK: - Helpers

extension StoredArray {
    /// The element count, after checking that the bytes fit the shape.
    fileprivate func checkedCount(_ name: String) throws -> Int {
        guard shape.allSatisfy({ $0 >= 0 }), let size = byteCount(shape, dtype), size == bytes.count else {
            throw SafeTensorsError(
                "tensor '\(name)': \(bytes.count) bytes do not fit shape \(shape) of \(dtype.rawValue)")
        }
        return size / dtype.byteSize
    }

    /// Element `i` as the little-endian integer type `W` (the bit pattern for floats).
    @inline(__always)
    fileprivate func load<W: FixedWidthInteger>(_ i: Int, _: W.Type) -> W {
        bytes.withUnsafeBytes {
            W(littleEndian: $0.loadUnaligned(fromByteOffset: i * MemoryLayout<W>.size, as: W.self))
        }
    }
}

/// The bytes of `shape` elements of `dtype`, or nil on overflow.
private func byteCount(_ shape: [Int], _ dtype: DType) -> Int? {
    var n = dtype.byteSize
    for d in shape {
        let (p, overflow) = n.multipliedReportingOverflow(by: d)
        if overflow { return nil }
        n = p
    }
    return n
}

/// A JSON array of integers (NSNumber from JSONSerialization; booleans and non-integral numbers rejected).
private func integerArray(_ value: Any) -> [Int]? {
    guard let items = value as? [Any] else { return nil }
    var out: [Int] = []
    for item in items {
        guard let n = item as? NSNumber, !["c", "B", "d", "f"].contains(String(cString: n.objCType)),
            let i = n as? Int
        else { return nil }
        out.append(i)
    }
    return out
}

/// `s` as a JSON string literal.
private func jsonString(_ s: String) -> String {
    var out = "\""
    for u in s.unicodeScalars {
        switch u {
        case "\"", "\\": out += "\\\(u)"
        case _ where u.value < 0x20: out += String(format: "\\u%04x", u.value)
        default: out.unicodeScalars.append(u)
        }
    }
    return out + "\""
}

/// A short reason for a Foundation error (its debug description when it has one).
private func reason(_ error: Error) -> String {
    let ns = error as NSError
    return (ns.userInfo[NSDebugDescriptionErrorKey] as? String) ?? ns.localizedDescription
}
