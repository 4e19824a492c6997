import Foundation
import StetCrypto
import StetManifest
import StetTesting
import Testing

/// docs/manifests.md against the decoders: every field a decoder accepts has a row, every row is
/// a field a decoder accepts, `required` is written exactly where the decoder requires the
/// field, and the examples validate as written. The fields come from the decoders themselves
/// (`ManifestSchema`), found by giving each mapping they ask for an empty mapping until no new
/// field turns up, so a field added to a decoder is missing from the reference until it is
/// documented.
@Suite struct ManifestReferenceTests {
    static let reference = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../docs/manifests.md").standardized.path

    /// The document forms the reference has a table for, with the smallest document that
    /// reaches every mapping of its kind.
    enum Form: String, CaseIterable, CustomStringConvertible {
        case service = "Service", backupPolicy = "BackupPolicy", monitor = "Monitor", notifier = "Notifier"
        case maintenanceWindow = "MaintenanceWindow"
        case trustPolicy = "TrustPolicy"

        var description: String { rawValue }

        var skeleton: YAMLTree {
            switch self {
            case .trustPolicy:
                // Key names are the policy's own: one key, `name`, stands for all (`NAME` in the table).
                return .mapping([
                    ("apiVersion", .text("stet/v1")), ("kind", .text("TrustPolicy")),
                    ("keys", .mapping([("name", .mapping([]))])), ("roles", .mapping([])),
                ])
            default:
                return .mapping([
                    ("apiVersion", .text("stet/v1")), ("kind", .text(rawValue)),
                    ("metadata", .mapping([("name", .text("x"))])), ("spec", .mapping([])),
                ])
            }
        }

        var schemaForm: ManifestSchema.Form { self == .trustPolicy ? .trustPolicy : .manifest }
    }

    /// A YAML document built up by the test, written in flow style.
    indirect enum YAMLTree {
        case text(String)
        case mapping([(String, YAMLTree)])

        var yaml: String {
            switch self {
            case .text(let text): return "\"\(text)\""
            case .mapping(let fields): return "{" + fields.map { "\($0.0): \($0.1.yaml)" }.joined(separator: ", ") + "}"
            }
        }

        /// This tree with an empty mapping at `path`, making the mappings on the way.
        func settingEmptyMapping(at path: ArraySlice<String>) -> YAMLTree {
            guard let name = path.first else { return .mapping([]) }
            var fields: [(String, YAMLTree)] = []
            if case .mapping(let existing) = self { fields = existing }
            if let index = fields.firstIndex(where: { $0.0 == name }) {
                fields[index].1 = fields[index].1.settingEmptyMapping(at: path.dropFirst())
            } else {
                fields.append((name, YAMLTree.mapping([]).settingEmptyMapping(at: path.dropFirst())))
            }
            return .mapping(fields)
        }
    }

    /// Every field the decoder of `form` accepts (list indexes written `[]`), and whether it is
    /// required: the skeleton's, then those of each field given an empty mapping, until nothing
    /// new turns up.
    static func acceptedFields(_ form: Form) -> [String: Bool] {
        func read(_ tree: YAMLTree) -> [String: Bool] {
            let fields = ManifestSchema.fieldsAccepted(by: tree.yaml, as: form.schemaForm)
            return Dictionary(
                fields.map { ($0.key.replacing(/\[[0-9]+\]/, with: "[]"), $0.value) }, uniquingKeysWith: { $0 || $1 })
        }
        var accepted = read(form.skeleton)
        var waiting = Array(accepted.keys)
        while let path = waiting.popLast() {
            let tree = form.skeleton.settingEmptyMapping(at: path.split(separator: ".").map(String.init)[...])
            for (field, required) in read(tree) {
                if accepted[field] == nil { waiting.append(field) }
                accepted[field] = (accepted[field] ?? false) || required
            }
        }
        return accepted
    }

    struct Row {
        let path: String
        let defaultValue: String
    }

    /// The rows of the table after `<!-- fields: NAME -->`.
    static func documented(_ name: String) throws -> [Row] {
        let text = try String(contentsOfFile: reference, encoding: .utf8)
        guard let marker = text.range(of: "<!-- fields: \(name) -->") else {
            throw TestFailure("docs/manifests.md has no table marked <!-- fields: \(name) -->")
        }
        var rows: [Row] = []
        // The table starts at the first row after the marker and ends at the first line that is not one.
        for line in text[marker.upperBound...].split(separator: "\n", omittingEmptySubsequences: false)
            .drop(while: { !$0.hasPrefix("|") })
        {
            guard line.hasPrefix("|") else { break }
            let cells = line.split(separator: "|", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard cells.count > 3, cells[1].hasPrefix("`"), cells[1].hasSuffix("`"), cells[1].count > 2 else { continue }
            rows.append(Row(path: String(cells[1].dropFirst().dropLast()), defaultValue: cells[3]))
        }
        return rows
    }

    /// The rows that describe `form`: its own table, and for manifests the fields of every document.
    static func rows(_ form: Form) throws -> [Row] {
        try documented(form.rawValue) + (form == .trustPolicy ? [] : documented("common"))
    }

    /// A documented path matches a field when each part is equal, or the documented part is a
    /// placeholder in capitals (`keys.NAME.publicKey`, `roles.ROLE.threshold`).
    static func matches(_ documented: String, _ field: String) -> Bool {
        let left = documented.split(separator: "."), right = field.split(separator: ".")
        guard left.count == right.count else { return false }
        return zip(left, right).allSatisfy { doc, part in
            doc == part || (!doc.isEmpty && doc.allSatisfy { $0.isUppercase || $0 == "_" })
        }
    }

    /// The exact row for `field`, else the first placeholder row that matches it.
    static func row(for field: String, in rows: [Row]) -> Row? {
        rows.first { $0.path == field } ?? rows.first { matches($0.path, field) }
    }

    @Test func theDecodersAreExploredThroughEveryMapping() {
        // The exploration reaches fields behind alternatives and nested mappings alike.
        let service = Self.acceptedFields(.service)
        #expect(service["spec.replicas"] == true)
        #expect(service["spec.health.http.bodyContains"] == false)
        #expect(service["spec.restart.backoff.max"] == false)
        #expect(service["spec.run.ports.start"] == true)
        #expect(Self.acceptedFields(.monitor)["spec.probe.tcp.address"] == true)
        #expect(Self.acceptedFields(.trustPolicy)["keys.name.publicKey"] == true)
        #expect(Self.acceptedFields(.trustPolicy)["roles.operator.threshold"] == true)
        // Free-form maps (labels, env) are values, not fields.
        #expect(!service.keys.contains { $0.hasPrefix("metadata.labels.") || $0.hasPrefix("spec.run.env.") })
    }

    @Test(arguments: Form.allCases)
    func everyFieldADecoderAcceptsIsDocumented(form: Form) throws {
        let rows = try Self.rows(form)
        let missing = Self.acceptedFields(form).keys.sorted().filter { Self.row(for: $0, in: rows) == nil }
        #expect(missing.isEmpty, "docs/manifests.md, table \(form): fields the decoder accepts but the reference does not name: \(missing)")
    }

    @Test(arguments: Form.allCases)
    func everyDocumentedFieldIsOneADecoderAccepts(form: Form) throws {
        let accepted = Self.acceptedFields(form).keys
        let own = try Self.documented(form.rawValue)
        let unknown = own.map(\.path).filter { path in !accepted.contains { Self.matches(path, $0) } }
        #expect(unknown.isEmpty, "docs/manifests.md, table \(form): rows for fields the decoder does not accept: \(unknown)")
    }

    @Test(arguments: [Form.service, .backupPolicy, .monitor, .notifier])
    func theCommonFieldsAreAcceptedByEveryKind(form: Form) throws {
        let accepted = Self.acceptedFields(form)
        let unknown = try Self.documented("common").map(\.path).filter { accepted[$0] == nil }
        #expect(unknown.isEmpty, "docs/manifests.md, table common: \(form) does not accept \(unknown)")
    }

    @Test(arguments: Form.allCases)
    func requiredIsWrittenExactlyWhereTheDecoderRequiresTheField(form: Form) throws {
        let rows = try Self.rows(form)
        var wrong: [String] = []
        for (field, required) in Self.acceptedFields(form).sorted(by: { $0.key < $1.key }) {
            guard let row = Self.row(for: field, in: rows) else { continue }
            if (row.defaultValue == "required") != required {
                wrong.append("\(row.path): the decoder \(required ? "requires it" : "does not require it"), the reference says \"\(row.defaultValue)\"")
            }
        }
        #expect(wrong.isEmpty, "docs/manifests.md, table \(form): \(wrong)")
    }

    /// The ```yaml blocks of the reference.
    static func examples() throws -> [String] {
        let text = try String(contentsOfFile: reference, encoding: .utf8)
        var blocks: [String] = []
        var rest = text[...]
        while let open = rest.range(of: "```yaml\n"), let close = rest.range(of: "\n```", range: open.upperBound..<rest.endIndex) {
            blocks.append(String(rest[open.upperBound..<close.lowerBound]) + "\n")
            rest = rest[close.upperBound...]
        }
        return blocks
    }

    @Test func everyExampleValidatesAsWritten() throws {
        let blocks = try Self.examples()
        let policies = blocks.filter { $0.contains("kind: TrustPolicy") }
        let manifests = blocks.filter { !$0.contains("kind: TrustPolicy") }
        #expect(policies.count == 1)
        #expect(manifests.count >= 4)
        // Manifests refer to each other across examples (a Monitor to its Notifier), so they
        // are one release.
        let files = manifests.enumerated().map { (name: "example-\($0.offset + 1).yaml", bytes: Data($0.element.utf8)) }
        let state = try ManifestLoader.decode(files: files)
        #expect(state.services.count >= 1 && state.backupPolicies.count >= 1 && state.monitors.count >= 1 && state.notifiers.count >= 1)
        for policy in policies {
            _ = try TrustPolicy.parse(Data(policy.utf8), file: "trust.yaml") { _ in try PrivateKey.generate().publicKey.pem() }
        }
    }
}
