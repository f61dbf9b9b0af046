import Foundation
import XCTest

/// A plain `swift build -c release` (how every dependent package builds SequenceLab) has no cross-module
/// optimisation: a public generic function called from another module runs unspecialised (protocol witnesses for
/// every scalar operation, ~10x slower) unless it is pre-specialised. This test reads the library sources and
/// requires `@_specialize(where T == Float)` (or `@inlinable`) on every public function or initializer that is
/// generic over a `T: TensorScalar`: declared in a type or extension generic over T without generic parameters of its
/// own, or declaring exactly `<T: TensorScalar>`. (docs/performance.md, "Speed without build flags".)
final class SpecialisationTests: XCTestCase {
    static let modules = ["Tensors", "Layers", "Training"]

    func testEveryPublicGenericEntryPointIsSpecialised() throws {
        let sources = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Sources")
        var files = [URL]()
        for module in Self.modules {
            let enumerator = FileManager.default.enumerator(at: sources.appendingPathComponent(module), includingPropertiesForKeys: nil)
            while let url = enumerator?.nextObject() as? URL {
                if url.pathExtension == "swift" { files.append(url) }
            }
        }
        XCTAssertGreaterThan(files.count, 50, "sources not found at \(sources.path)")
        let texts = try files.map { try String(contentsOf: $0, encoding: .utf8) }
        let genericTypes = Self.typesGenericOverScalar(texts)
        XCTAssertTrue(genericTypes.isSuperset(of: ["Tensor", "Linear"]), "\(genericTypes.sorted())")
        var missing = [String](), checked = 0
        for (url, text) in zip(files, texts) {
            for (line, declaration) in Self.unspecialisedEntryPoints(text, genericTypes: genericTypes, checked: &checked) {
                missing.append("\(url.path.replacingOccurrences(of: sources.path + "/", with: "")):\(line): \(declaration)")
            }
        }
        XCTAssertGreaterThan(checked, 100, "the scan found too few entry points to be trusted")
        XCTAssertTrue(missing.isEmpty, "public generic entry points without @_specialize(where T == Float):\n" + missing.joined(separator: "\n"))
    }

    /// Names of types declared `Name<T: TensorScalar ...>` (plus Tensor).
    static func typesGenericOverScalar(_ texts: [String]) -> Set<String> {
        let pattern = try! NSRegularExpression(pattern: #"\b(?:class|struct|enum|actor)\s+(\w+)\s*<([^>]*)>([^{]*)"#)
        var names: Set<String> = ["Tensor"]
        for text in texts {
            for m in pattern.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
                let params = String(text[Range(m.range(at: 2), in: text)!]) + String(text[Range(m.range(at: 3), in: text)!])
                if params.range(of: #"\bT\s*:\s*TensorScalar"#, options: .regularExpression) != nil {
                    names.insert(String(text[Range(m.range(at: 1), in: text)!]))
                }
            }
        }
        return names
    }

    /// (line number, declaration) of each public generic entry point without a specialisation.
    static func unspecialisedEntryPoints(_ text: String, genericTypes: Set<String>, checked: inout Int) -> [(Int, String)] {
        enum Context { case generic, protocolBody, other }
        let typeDecl = try! NSRegularExpression(pattern: #"^\s*(?:(?:public|open|internal|fileprivate|private|final|indirect)\s+)*(?:class|struct|enum|actor)\s+(\w+)"#)
        let extensionDecl = try! NSRegularExpression(pattern: #"^\s*(?:(?:public|internal|fileprivate|private)\s+)*extension\s+(\w+)(.*)$"#)
        let functionDecl = try! NSRegularExpression(pattern: #"^\s*(?:@\w+(?:\([^)]*\))?\s+)*((?:(?:public|open|static|class|final|override|mutating|@discardableResult)\s+)*)(?:func\s+(?:\w+|[^\s(<]+)\s*(<[^>]*>)?\s*\(|init[?!]?\s*(<[^>]*>)?\s*\()"#)
        func firstMatch(_ r: NSRegularExpression, _ s: String) -> [String?]? {
            guard let m = r.firstMatch(in: s, range: NSRange(s.startIndex..., in: s)) else { return nil }
            return (0..<m.numberOfRanges).map { i in Range(m.range(at: i), in: s).map { String(s[$0]) } }
        }
        var result = [(Int, String)]()
        var depth = 0, stack = [(depth: Int, context: Context)](), attributes = [String](), inMultiline = false
        for (index, line) in text.components(separatedBy: "\n").enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.components(separatedBy: "\"\"\"").count % 2 == 0 { inMultiline.toggle(); continue }
            if inMultiline { continue }
            let code = line.replacingOccurrences(of: #""(?:\\.|[^"\\])*""#, with: "\"\"", options: .regularExpression)
                .components(separatedBy: "//")[0]
            var context: Context?
            if let e = firstMatch(extensionDecl, code) {
                let concrete = (e[2] ?? "").range(of: #"\bT\s*=="#, options: .regularExpression) != nil
                context = genericTypes.contains(e[1]!) && !concrete ? .generic : .other
            } else if code.range(of: #"^\s*(?:(?:public|internal)\s+)*protocol\s+"#, options: .regularExpression) != nil {
                context = .protocolBody
            } else if let t = firstMatch(typeDecl, code) {
                context = genericTypes.contains(t[1]!) && code.contains("<") ? .generic : .other
            }
            if let f = firstMatch(functionDecl, line), (f[1] ?? "").contains("public") || line.contains("public ") {
                let own = f[2] ?? f[3]
                let enclosing = stack.last
                var entry = false
                if let enclosing, enclosing.context == .generic, depth == enclosing.depth + 1, own == nil {
                    entry = true
                } else if let own, own.range(of: #"^<\s*T\s*:\s*TensorScalar\s*>$"#, options: .regularExpression) != nil,
                          enclosing == nil ? depth == 0 : (enclosing!.context == .other && depth == enclosing!.depth + 1) {
                    entry = true
                }
                if entry {
                    checked += 1
                    let attributeText = attributes.joined(separator: " ") + " " + line
                    if !attributeText.contains("@_specialize(where T == Float)") && !attributeText.contains("@inlinable") {
                        result.append((index + 1, trimmed))
                    }
                }
            }
            attributes = trimmed.hasPrefix("@") ? attributes + [trimmed] : []
            let opens = code.filter { $0 == "{" }.count, closes = code.filter { $0 == "}" }.count
            if let context, opens > closes { stack.append((depth, context)) }
            depth += opens - closes
            while let last = stack.last, depth <= last.depth { stack.removeLast() }
        }
        return result
    }
}
