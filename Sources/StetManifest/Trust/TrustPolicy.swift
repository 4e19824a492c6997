public import Foundation
public import StetCrypto
import StetCore
import StetState

/// Who may do what: the keys Stet trusts and the threshold each role needs (`keys/trust.yaml`).
public struct TrustPolicy: Sendable {
    public enum Role: String, CaseIterable, Sendable, Codable {
        /// May change this policy (sign a rotation).
        case root
        /// May sign releases.
        case release
        /// May sign plans and audit entries.
        case `operator`
        /// Hosts that may join a fleet (`stet run --cluster`): each signs its audit entries, its
        /// published status and, as leader, the assignments with its own key.
        case node

        /// Roles a policy may leave out.
        public var isOptional: Bool { self == .operator || self == .node }
    }

    public struct Key: Sendable {
        public let name: String
        public let publicKey: PublicKey
        /// Marked `example: true`: shipped with Stet's example release, never for real use.
        public let example: Bool
    }

    public struct Threshold: Sendable, Equatable, Codable {
        public let threshold: Int
        public let keys: [String]
    }

    public let version: Int
    /// Keys by name.
    public let keys: [String: Key]
    public let roles: [Role: Threshold]
    /// `sha256:<hex>` of the `trust.yaml` bytes this policy was read from.
    public let digest: String

    /// The keys of `role`, in the order the policy names them.
    public func keys(in role: Role) -> [Key] { roles[role]?.keys.compactMap { keys[$0] } ?? [] }

    public func threshold(of role: Role) -> Int { roles[role]?.threshold ?? Int.max }

    /// The name of the key whose public half is `key`, if the policy has it.
    public func name(of key: PublicKey) -> String? { keys.values.first { $0.publicKey == key }?.name }

    /// Same keys, key material, roles and version: nothing a rotation would need to change.
    public func sameAuthority(as other: TrustPolicy) -> Bool {
        version == other.version && roles == other.roles && keys.count == other.keys.count
            && keys.allSatisfy { name, key in
                other.keys[name].map { $0.publicKey == key.publicKey && $0.example == key.example } ?? false
            }
    }

    /// Reads `keys/trust.yaml` and the public key files it names (relative to its folder, and
    /// inside it even through symbolic links: a key file is never read from anywhere else).
    /// Errors list every problem with `file:line:column`. The policy file itself may not be a
    /// symbolic link: it is parsed before anything is verified and its errors quote what they
    /// found, so a link pushed in its place would print the start of any file Stet can read.
    ///
    /// Throws `ManifestError` for what the files say (or lack), and `InputFile.Failure` when the
    /// host could not read one of them (`hostError`): that is no judgement on the policy.
    public static func load(file: String) throws -> TrustPolicy {
        let bytes: Data
        do {
            guard let read = try InputFile.read(file, limit: InputFile.Limit.trustPolicy, followSymlinks: false) else {
                throw ManifestError([Diagnostic(
                    location: SourceLocation(file: file, line: 1, column: 1), field: "",
                    message: "cannot read the trust policy (create it, or pass --trust FILE)")])
            }
            bytes = read
        } catch let error as InputFile.Failure {
            if error.hostError != nil { throw error }
            throw ManifestError([Diagnostic(location: SourceLocation(file: file, line: 1, column: 1), field: "", message: error.message)])
        }
        let folder = (file as NSString).deletingLastPathComponent
        let directory = ManifestDirectory(path: folder.isEmpty ? "." : folder)
        var unreadable: InputFile.Failure?
        do {
            return try parse(bytes, file: file) { relative in
                let path = directory.path + "/" + relative
                var info = stat()
                guard lstat(path, &info) == 0 else {
                    let failure = InputFile.Failure(path: path, "cannot look up", errorNumber: errno)
                    if failure.hostError != nil, unreadable == nil { unreadable = failure }
                    return nil
                }
                guard directory.staysInside(relative) else {
                    throw KeyFileProblem(message: "public key file \(relative) leads outside \(directory.path) through a symbolic link")
                }
                do throws(InputFile.Failure) {
                    return try InputFile.read(path, limit: InputFile.Limit.key)
                } catch {
                    if error.hostError != nil, unreadable == nil { unreadable = error }
                    throw KeyFileProblem(message: error.description)
                }
            }
        } catch {
            // A key file the host could not read makes the policy's errors meaningless.
            throw unreadable ?? error
        }
    }

    /// Why a key file named by the policy cannot be used, besides not being there.
    public struct KeyFileProblem: Error, CustomStringConvertible, Sendable {
        public let message: String
        public var description: String { message }
    }

    /// Parses policy bytes; `loadKey` returns the PEM of a `publicKey` path, nil when there is no
    /// such file, or throws why it cannot be used.
    public static func parse(_ bytes: Data, file: String, loadKey: (String) throws -> Data?) throws -> TrustPolicy {
        let sink = DiagnosticSink(file: file)
        var policy: TrustPolicy?
        if bytes.count > InputFile.Limit.trustPolicy {
            sink.report(nil, "", "the trust policy is larger than \(InputFile.Limit.trustPolicy) bytes")
        } else if let text = String(validatingUTF8Data: bytes) {
            if let roots = SafeYAML.documents(text, sink: sink) {
                if roots.count > 1 { sink.report(roots[1].mark, "", "expected one YAML document") }
                if let root = roots.first {
                    policy = decode(root, digest: bytes.sha256Reference, loadKey: loadKey)
                } else {
                    sink.report(nil, "", "the trust policy is empty")
                }
            }
        } else {
            sink.report(nil, "", "not UTF-8 text")
        }
        guard let policy, sink.diagnostics.isEmpty else { throw ManifestError(sink.diagnostics) }
        return policy
    }

    static func decode(_ root: Cursor, digest: String, loadKey: (String) throws -> Data?) -> TrustPolicy? {
        guard let document = root.mapping() else { return nil }
        defer { document.finish() }
        if let api = document.required("apiVersion", "stet/v1")?.string(), api != "stet/v1" {
            document.optional("apiVersion")?.error("expected stet/v1, found \"\(api)\"")
        }
        if let kind = document.required("kind", "TrustPolicy")?.string(), kind != "TrustPolicy" {
            document.optional("kind")?.error("expected TrustPolicy, found \"\(kind)\"")
        }
        let version = document.required("version", "a whole number ≥ 1, raised by each rotation")?.int(in: 1...1_000_000)
        var keys: [String: Key] = [:]
        var keysOK = false
        if let keyMap = document.required("keys", "name: {publicKey: FILE}")?.mapping(),
            keyMap.entries.count <= Envelope.maximumSignatures || {
                keyMap.cursor.error("expected at most \(Envelope.maximumSignatures) keys, found \(keyMap.entries.count)")
                return false
            }()
        {
            keysOK = true
            for (name, value) in keyMap.entries {
                _ = keyMap.optional(name.text)
                if !ResourceID.isValidName(name.text) {
                    name.cursor.error("expected a key name that is a DNS label, found \"\(name.text)\"")
                    keysOK = false
                    continue
                }
                if let key = decodeKey(name.text, value, loadKey: loadKey) { keys[name.text] = key } else { keysOK = false }
            }
            if keyMap.entries.isEmpty { keyMap.cursor.error("expected at least one key"); keysOK = false }
        }
        var roles: [Role: Threshold] = [:]
        var rolesOK = false
        if let roleMap = document.required("roles", "root, release and operator")?.mapping() {
            defer { roleMap.finish() }
            rolesOK = true
            for role in Role.allCases {
                let cursor = role.isOptional ? roleMap.optional(role.rawValue)
                    : roleMap.required(role.rawValue, "threshold and keys")
                guard let cursor else { if !role.isOptional { rolesOK = false }; continue }
                if let threshold = decodeRole(cursor, known: keysOK ? Set(keys.keys) : nil) { roles[role] = threshold } else { rolesOK = false }
            }
        }
        guard let version, keysOK, rolesOK else { return nil }
        return TrustPolicy(version: version, keys: keys, roles: roles, digest: digest)
    }

    static func decodeKey(_ name: String, _ cursor: Cursor, loadKey: (String) throws -> Data?) -> Key? {
        guard let entry = cursor.mapping() else { return nil }
        defer { entry.finish() }
        let file = entry.required("publicKey", "a PEM public key file, relative to the policy's folder")?.string()
        let example = entry.field("example", default: false) { $0.bool() }
        guard let file, let example else { return nil }
        guard ManifestDirectory.isSafeRelativePath(file) else {
            entry.optional("publicKey")?.error(
                "expected a path relative to the policy's folder, without '..', found \"\(TextEscaping.excerpt(file, limit: 80))\"")
            return nil
        }
        let loaded: Data?
        do {
            loaded = try loadKey(file)
        } catch {
            entry.optional("publicKey")?.error("\(error)")
            return nil
        }
        guard let pem = loaded else {
            entry.optional("publicKey")?.error("cannot read public key file \(file)")
            return nil
        }
        do {
            return Key(name: name, publicKey: try PublicKey(pem: pem, source: file), example: example)
        } catch {
            entry.optional("publicKey")?.error("\(error)")
            return nil
        }
    }

    static func decodeRole(_ cursor: Cursor, known: Set<String>?) -> Threshold? {
        guard let role = cursor.mapping() else { return nil }
        defer { role.finish() }
        let threshold = role.required("threshold", "how many distinct keys must sign")?.int(in: 1...Envelope.maximumSignatures)
        let keyCursor = role.required("keys", "names from keys")
        let names = keyCursor?.stringList(nonEmpty: true)
        guard let threshold, let names, let keyCursor else { return nil }
        var ok = true
        if let known, let items = keyCursor.list() {
            for (item, name) in zip(items, names) where !known.contains(name) {
                item.error("no key named \"\(name)\" under keys")
                ok = false
            }
        }
        if Set(names).count != names.count {
            keyCursor.error("expected each key once")
            ok = false
        }
        if threshold > Set(names).count {
            (role.optional("threshold") ?? cursor).error("threshold \(threshold) can never be met by \(Set(names).count) key(s)")
            ok = false
        }
        return ok ? Threshold(threshold: threshold, keys: names) : nil
    }
}
