import Foundation
import StetCore
import Yams

/// Every YAML file Stet reads goes through here. Anchors and aliases are refused: a few hundred
/// bytes of nested aliases expand to billions of nodes ("billion laughs"), and trust.yaml and
/// manifests are parsed before any signature is checked, so an unsigned push could stall a
/// host. Manifests never need them (and with Stet's own scalar typing `<<` is not a merge key,
/// only an unknown field).
///
/// The expansion happens inside the parser, before a node could be looked at, so the text is
/// first parsed with every `*` changed to `x`: aliases become plain scalars, nothing else
/// changes (a `*` is otherwise only content), and that parse is linear. Any anchor it finds is
/// refused with its position. Without anchors an alias can only be undefined, which the real
/// parse reports as an error at once. Text without `&` has no anchor and is parsed once.
///
/// The encoding is always UTF-8, named: Yams's `.default` reads the whole environment on every
/// parser made (a tenth of parsing 10,000 manifests) and lets `YAMS_DEFAULT_ENCODING` change how
/// a signed manifest is read.
enum SafeYAML {
    /// The documents of `text`, or nil after reporting why into `sink`.
    static func documents(_ text: String, sink: DiagnosticSink) -> [Node]? {
        do {
            if text.utf8.contains(UInt8(ascii: "&")) {
                let defused = String(decoding: text.utf8.map { $0 == UInt8(ascii: "*") ? UInt8(ascii: "x") : $0 }, as: UTF8.self)
                let parser = try Parser(yaml: defused, resolver: ManifestLoader.resolver, constructor: .default, encoding: .utf8)
                var anchored: [Node] = []
                while let root = try parser.nextRoot() { findAnchors(root, into: &anchored) }
                if !anchored.isEmpty {
                    for node in anchored.prefix(10) {
                        sink.report(
                            node.mark, "",
                            "anchors and aliases are not accepted (found &\(TextEscaping.excerpt(node.anchor?.rawValue ?? "", limit: 40))): "
                                + "write the value out in full")
                    }
                    return nil
                }
            }
            let parser = try Parser(yaml: text, resolver: ManifestLoader.resolver, constructor: .default, encoding: .utf8)
            var roots: [Node] = []
            while let root = try parser.nextRoot() { roots.append(root) }
            return roots
        } catch let error as YamlError {
            if case .composer(_, let problem, let mark, _) = error, problem.contains("undefined alias") {
                sink.report(mark, "", "aliases are not accepted: write the value out in full")
            } else {
                ManifestLoader.report(error, into: sink)
            }
        } catch {
            sink.report(nil, "", "cannot parse YAML: \(error)")
        }
        return nil
    }

    /// Every node with an anchor, in document order. Without aliases the tree is as large as
    /// the text, and libyaml limits nesting to 1,000 levels.
    private static func findAnchors(_ node: Node, into found: inout [Node]) {
        if node.anchor != nil { found.append(node) }
        switch node {
        case .mapping(let mapping):
            for (key, value) in mapping {
                findAnchors(key, into: &found)
                findAnchors(value, into: &found)
            }
        case .sequence(let sequence):
            for item in sequence { findAnchors(item, into: &found) }
        case .scalar, .alias:
            break
        }
    }
}
