import Foundation
import Tensors

/// Binary greyscale PGM images (Netpbm "P5", 8 bits): the simplest format every image viewer opens, for looking at
/// Pathfinder and CIFAR-10 examples.
public enum PGM {
    /// The file bytes of a `width x height` image with row-major intensities 0-255.
    public static func encode(pixels: [UInt8], width: Int, height: Int) -> [UInt8] {
        precondition(pixels.count == width * height, "PGM: \(pixels.count) pixels for a \(width)x\(height) image")
        return Array("P5\n\(width) \(height)\n255\n".utf8) + pixels
    }

    /// Writes an image whose tokens are pixel intensities (0-255), e.g. a Pathfinder or CIFAR-10 example.
    public static func write(tokens: [Int], width: Int, height: Int, to url: URL) throws {
        guard tokens.count == width * height else {
            throw SequenceLabError("PGM: \(tokens.count) tokens do not fill a \(width)x\(height) image")
        }
        if let bad = tokens.first(where: { !(0...255).contains($0) }) {
            throw SequenceLabError("PGM: token \(bad) is not a pixel intensity 0-255")
        }
        try write(pixels: tokens.map { UInt8($0) }, width: width, height: height, to: url)
    }

    /// Writes a `width x height` image.
    public static func write(pixels: [UInt8], width: Int, height: Int, to url: URL) throws {
        do {
            try Data(encode(pixels: pixels, width: width, height: height)).write(to: url, options: .atomic)
        } catch {
            throw SequenceLabError("PGM: cannot write \(url.path)")
        }
    }

    /// Reads a binary PGM (maximum value 255): width, height and row-major pixels.
    public static func decode(_ bytes: [UInt8]) throws -> (width: Int, height: Int, pixels: [UInt8]) {
        var i = 0
        func token() throws -> String {
            while i < bytes.count {  // skip whitespace and comments
                if bytes[i] == UInt8(ascii: "#") {
                    while i < bytes.count && bytes[i] != 0x0A { i += 1 }
                } else if [0x20, 0x09, 0x0A, 0x0D].contains(bytes[i]) {
                    i += 1
                } else { break }
            }
            let start = i
            while i < bytes.count && ![0x20, 0x09, 0x0A, 0x0D].contains(bytes[i]) { i += 1 }
            guard i > start else { throw SequenceLabError("PGM: truncated header") }
            return String(decoding: bytes[start..<i], as: UTF8.self)
        }
        guard try token() == "P5" else { throw SequenceLabError("PGM: not a binary PGM (P5) file") }
        guard let width = Int(try token()), let height = Int(try token()), width > 0, height > 0,
              try token() == "255" else { throw SequenceLabError("PGM: bad header (expected width height 255)") }
        i += 1  // the single whitespace byte before the raster
        guard bytes.count - i == width * height else {
            throw SequenceLabError("PGM: \(max(0, bytes.count - i)) pixel bytes for a \(width)x\(height) image")
        }
        return (width, height, Array(bytes[i...]))
    }
}
