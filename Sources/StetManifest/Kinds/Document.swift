import StetCore

/// One decoded manifest document and where it was declared.
struct DecodedResource {
    enum Value {
        case service(Service)
        case backupPolicy(BackupPolicy)
        case monitor(Monitor)
        case notifier(Notifier)
        case window(MaintenanceWindow)
    }

    let id: ResourceID
    let value: Value
    let location: SourceLocation
}

/// What the documents of a file declare and refer to, kept even for documents with errors, so
/// that duplicates and dangling references are reported beside every other problem.
struct Declarations {
    var declared: [(ResourceID, SourceLocation)] = []
    /// (referenced resource, the resource that refers, the field that names it)
    var references: [(target: ResourceID, from: ResourceID, place: Cursor.Place)] = []
}

enum DocumentDecoder {
    static let apiVersion = "stet/v1"

    /// Decodes one document; nil when it has errors (reported into the cursor's sink).
    static func decode(_ root: Cursor, declarations: inout Declarations) -> DecodedResource? {
        guard let document = root.mapping() else { return nil }
        defer { document.finish() }
        if let version = document.required("apiVersion", apiVersion)?.string(), version != apiVersion {
            document.optional("apiVersion")?.error("expected \(apiVersion), found \"\(version)\"")
        }
        let kind = document.required("kind", ResourceKind.allCases.map(\.rawValue).joined(separator: " | "))?
            .oneOf(ResourceKind.self)
        let metadata = document.required("metadata", "name and labels").flatMap(decodeMetadata)
        let spec = document.required("spec", "the resource's specification")
        let location = SourceLocation(file: root.sink.file, line: root.mark?.line ?? 1, column: root.mark?.column ?? 1)
        if let kind, let metadata { declarations.declared.append((ResourceID(kind, metadata.name), location)) }
        guard let kind, let spec else { return nil }
        var references: [(ResourceID, Cursor)] = []
        let value: DecodedResource.Value?
        switch kind {
        case .service: value = ServiceDecoder.decode(spec, metadata: metadata, references: &references).map(DecodedResource.Value.service)
        case .backupPolicy: value = BackupPolicyDecoder.decode(spec, metadata: metadata, references: &references).map(DecodedResource.Value.backupPolicy)
        case .monitor: value = MonitorDecoder.decode(spec, metadata: metadata, references: &references).map(DecodedResource.Value.monitor)
        case .notifier: value = NotifierDecoder.decode(spec, metadata: metadata).map(DecodedResource.Value.notifier)
        case .maintenanceWindow: value = WindowDecoder.decode(spec, metadata: metadata).map(DecodedResource.Value.window)
        }
        if let metadata {
            let id = ResourceID(kind, metadata.name)
            declarations.references += references.map { ($0.0, id, $0.1.place) }
        }
        guard let value, let metadata else { return nil }
        return DecodedResource(id: ResourceID(kind, metadata.name), value: value, location: location)
    }

    static func decodeMetadata(_ cursor: Cursor) -> Metadata? {
        guard let mapping = cursor.mapping() else { return nil }
        defer { mapping.finish() }
        let nameCursor = mapping.required("name", "a DNS label such as web-1")
        var name = nameCursor?.string()
        if let text = name, !ResourceID.isValidName(text) {
            nameCursor?.error("expected a DNS label (lowercase letters, digits and '-', 1 to 63 characters, "
                + "starting and ending with a letter or digit), found \"\(text)\"")
            name = nil
        }
        let labels = mapping.optional("labels").map { $0.stringMap(keyRule: labelKeyProblem) } ?? [:]
        guard let name, let labels else { return nil }
        return Metadata(name: name, labels: labels)
    }

    /// Label names follow Prometheus (`[a-zA-Z_][a-zA-Z0-9_]*`), since labels reach alerts.
    static func labelKeyProblem(_ key: String) -> String? {
        let bytes = key.utf8
        func ok(_ b: UInt8, first: Bool) -> Bool {
            (b >= 65 && b <= 90) || (b >= 97 && b <= 122) || b == 95 || (!first && b >= 48 && b <= 57)
        }
        guard let head = bytes.first, ok(head, first: true), bytes.dropFirst().allSatisfy({ ok($0, first: false) }) else {
            return "expected a label name of letters, digits and '_' not starting with a digit, found \"\(key)\""
        }
        return nil
    }

    /// Why `url` is not a URL Stet's probes and notifiers can use (`HTTPURL`); nil when it is.
    static func urlProblem(_ url: String) -> String? {
        guard case .failure(let problem) = HTTPURL.parse(url) else { return nil }
        return "\"\(TextEscaping.excerpt(url, limit: 80))\" \(problem.reason)"
    }

    /// A health check or probe target: `http`, `tcp` or `exec`.
    static func decodeCheck(_ kind: String, _ cursor: Cursor, forReplica: Bool) -> Check? {
        switch kind {
        case "http":
            guard let http = cursor.mapping() else { return nil }
            defer { http.finish() }
            var url: String?
            var path: String?
            var port: Int?
            if forReplica {
                path = http.optional("path")?.string()
                if let p = path, !p.hasPrefix("/") || p.unicodeScalars.contains(where: { $0.value <= 0x20 || $0.value >= 0x7F }) {
                    http.optional("path")?.error("expected a path starting with / in printable ASCII without spaces (percent-encode the rest)")
                    path = nil
                }
                port = http.optional("port")?.int(in: 1...65535)
            } else {
                url = http.required("url", "http://host:port/path")?.string()
                if let u = url, let problem = urlProblem(u) {
                    http.optional("url")?.error(problem)
                    url = nil
                }
            }
            // Read before giving up on a missing url: every field of the check is known, and
            // checked, whatever else is wrong with it.
            let expectStatus = http.optional("expectStatus")?.int(in: 100...599)
            let body = http.optional("bodyContains")?.string()
            if !forReplica, url == nil { return nil }
            return .http(url: url, path: path ?? (forReplica ? "/" : nil), port: port, expectStatus: expectStatus, bodyContains: body)
        case "tcp":
            guard let tcp = cursor.mapping() else { return nil }
            defer { tcp.finish() }
            if forReplica {
                return .tcp(address: nil, port: tcp.optional("port")?.int(in: 1...65535))
            }
            guard let address = tcp.required("address", "host:port")?.string() else { return nil }
            guard let colon = address.lastIndex(of: ":"), let p = Int(address[address.index(after: colon)...]),
                (1...65535).contains(p), colon > address.startIndex
            else {
                tcp.optional("address")?.error("expected host:port, found \"\(address)\"")
                return nil
            }
            return .tcp(address: address, port: nil)
        default:
            guard let exec = cursor.mapping() else { return nil }
            defer { exec.finish() }
            guard let command = exec.required("command", "a list: program and arguments")?.stringList(nonEmpty: true) else {
                return nil
            }
            return .exec(command: command)
        }
    }
}
