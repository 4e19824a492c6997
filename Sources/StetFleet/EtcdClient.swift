public import AsyncHTTPClient
public import Foundation
import NIOCore
import NIOSSL

/// A client of etcd 3.4's v3 JSON gateway (`/v3/kv/*`, `/v3/lease/*`, `/v3/watch`): the fleet's
/// transport (docs/architecture.md, "A fleet on etcd"). etcd is never trusted: what comes back is
/// bounded and checked here, and whatever a node acts on is verified above this layer.
///
/// The gateway's conventions: keys and values are base64, int64 fields are JSON strings, zero
/// values are omitted (a missing `succeeded` is false, a missing `kvs` is none). Several
/// endpoints may be given: a request that cannot reach one tries the next, and the client keeps
/// to the one that answered last.
public final class EtcdClient: Sendable {
    public struct Configuration: Sendable {
        /// `http://HOST:PORT` or `https://HOST:PORT`, at least one.
        public var endpoints: [String]
        public var tls: TLS?
        /// Seconds a unary request may take on one endpoint.
        public var requestTimeout: Double = 2
        /// The largest answer read, in bytes.
        public var maximumResponse = 16 << 20

        /// `requestTimeout` in whole milliseconds (checked to 0.1–60 s when the client is made).
        var requestMilliseconds: Int64 { Int64((requestTimeout * 1000).rounded()) }

        public init(endpoints: [String], tls: TLS? = nil) {
            self.endpoints = endpoints
            self.tls = tls
        }
    }

    /// The production set-up: etcd with `--client-cert-auth`, a CA that signed its server
    /// certificate, and this node's client certificate and key (PEM files).
    public struct TLS: Sendable {
        public var caFile: String
        public var certificateFile: String
        public var keyFile: String

        public init(caFile: String, certificateFile: String, keyFile: String) {
            self.caFile = caFile
            self.certificateFile = certificateFile
            self.keyFile = keyFile
        }
    }

    /// What went wrong, with the endpoint(s) tried.
    public struct Failure: Error, CustomStringConvertible, Sendable {
        public enum Kind: Sendable { case unreachable, rejected, malformed, configuration }
        public let kind: Kind
        public let description: String
    }

    /// The largest key Stet writes or accepts, in bytes.
    public static let maximumKey = 1024
    /// etcd's default request limit (1.5 MiB): a larger value is refused before it is sent.
    public static let maximumValue = 1_536 * 1024

    let configuration: Configuration
    let endpoints: [URL]
    let http: HTTPClient
    private let preferred = Preferred()
    let counts = Counts()

    public init(_ configuration: Configuration) throws(Failure) {
        // Seconds become whole milliseconds below: a value out of this range could not convert.
        guard (0.1...60).contains(configuration.requestTimeout), (1024...(256 << 20)).contains(configuration.maximumResponse) else {
            throw Failure(
                kind: .configuration,
                description: "etcd: request timeout \(configuration.requestTimeout) s (expected 0.1 to 60) or answer limit "
                    + "\(configuration.maximumResponse) bytes (expected 1 KiB to 256 MiB) out of range")
        }
        guard !configuration.endpoints.isEmpty, configuration.endpoints.count <= 16 else {
            throw Failure(kind: .configuration, description: "etcd: expected 1 to 16 endpoints, got \(configuration.endpoints.count)")
        }
        var urls: [URL] = []
        for text in configuration.endpoints {
            guard text.count <= 256, let url = URL(string: text), let scheme = url.scheme, ["http", "https"].contains(scheme),
                url.host != nil, url.path.isEmpty || url.path == "/", url.query == nil, url.user == nil
            else {
                throw Failure(kind: .configuration, description: "etcd endpoint \"\(text.prefix(80))\": expected http(s)://HOST:PORT")
            }
            if scheme == "https", configuration.tls == nil {
                throw Failure(kind: .configuration, description: "etcd endpoint \(text): https needs the CA, certificate and key")
            }
            urls.append(url)
        }
        var http = HTTPClient.Configuration()
        http.timeout = .init(connect: .milliseconds(configuration.requestMilliseconds), read: nil)
        http.redirectConfiguration = .disallow
        if let tls = configuration.tls {
            do {
                var settings = TLSConfiguration.makeClientConfiguration()
                settings.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(tls.caFile))
                settings.certificateChain = try NIOSSLCertificate.fromPEMFile(tls.certificateFile).map { .certificate($0) }
                settings.privateKey = .privateKey(try NIOSSLPrivateKey(file: tls.keyFile, format: .pem))
                http.tlsConfiguration = settings
            } catch {
                throw Failure(kind: .configuration, description: "etcd TLS: \(error)")
            }
        }
        self.configuration = configuration
        self.endpoints = urls
        self.http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: http)
    }

    /// Closes every connection; call once, before the client goes.
    public func shutdown() async throws { try await http.shutdown() }

    // MARK: Keys and values

    public struct KeyValue: Sendable, Equatable {
        public let key: String
        public let value: Data
        public let createRevision: Int64
        public let modRevision: Int64
        public let version: Int64
        /// The lease the key is attached to; 0 for none.
        public let lease: Int64
    }

    /// The value at `key`, or nil.
    public func get(_ key: String) async throws -> KeyValue? {
        try await range(key, end: nil).kvs.first
    }

    /// Every key starting with `prefix`, in key order, and the store's revision: read in pages of
    /// `pageSize` keys, all at the revision of the first page (one consistent snapshot), so no
    /// answer comes near the answer limit; at most `maximumKeys` keys in all.
    public func list(prefix: String, pageSize: Int = 1000, maximumKeys: Int = 1_000_000) async throws -> (kvs: [KeyValue], revision: Int64) {
        try Self.checkKey(prefix)
        let end = Wire.b64(Self.prefixEnd(prefix))
        var start = Data(prefix.utf8)
        var revision: Int64 = 0
        var all: [KeyValue] = []
        while true {
            var request: [String: Any] = ["key": start.base64EncodedString(), "range_end": end, "limit": String(max(pageSize, 1))]
            if revision > 0 { request["revision"] = String(revision) }
            let body = try await post("/v3/kv/range", request)
            if revision == 0 { revision = try Self.revision(body) }
            let page = try Self.keyValues(body)
            all += page
            guard body["more"] as? Bool == true, let last = page.last else { return (all, revision) }
            // Each page must move forward, and the whole stay bounded, whatever etcd answers.
            let next = Data(last.key.utf8) + [0]
            guard next.lexicographicallyPrecedes(start) == false, next != start, all.count < maximumKeys else {
                throw Failure(kind: .malformed, description: "etcd: the keys under \(prefix) do not end (\(all.count) read)")
            }
            start = next
        }
    }

    /// Puts `value` at `key` (attached to `lease` unless 0); returns the new revision.
    @discardableResult
    public func put(_ key: String, _ value: Data, lease: Int64 = 0) async throws -> Int64 {
        let body = try await post("/v3/kv/put", Wire.put(key, value, lease: lease))
        return try Self.revision(body)
    }

    /// Deletes `key`, or every key under `prefix` with `prefix: true`; returns how many went.
    @discardableResult
    public func delete(_ key: String, prefix: Bool = false) async throws -> Int {
        try Self.checkKey(key)
        var request: [String: Any] = ["key": Wire.b64(key)]
        if prefix { request["range_end"] = Wire.b64(Self.prefixEnd(key)) }
        let body = try await post("/v3/kv/deleterange", request)
        return Int(body["deleted"] as? String ?? "0") ?? 0
    }

    /// A condition of a transaction.
    public enum Compare: Sendable {
        /// The key does not exist (its create revision is 0).
        case absent(String)
        /// The key was last written at `revision`.
        case modRevision(String, Int64)
        /// The key was created at `revision` (a lease-held key that is still the same one).
        case createRevision(String, Int64)
        case value(String, Data)
    }

    public enum Operation: Sendable {
        case put(String, Data, lease: Int64)
        case delete(String)
        case get(String)
    }

    /// Runs `success` if every comparison holds, `failure` otherwise; says which ran, the
    /// store's revision, and the keys that `get` operations read.
    public func transaction(_ compare: [Compare], success: [Operation], failure: [Operation] = []) async throws
        -> (succeeded: Bool, revision: Int64, read: [KeyValue])
    {
        let body = try await post(
            "/v3/kv/txn",
            ["compare": try compare.map(Wire.compare), "success": try success.map(Wire.operation), "failure": try failure.map(Wire.operation)])
        return try Self.transactionAnswer(body)
    }

    /// What a transaction's answer says: which branch ran, the revision, the keys read.
    package static func transactionAnswer(_ body: [String: Any]) throws -> (succeeded: Bool, revision: Int64, read: [KeyValue]) {
        var read: [KeyValue] = []
        for response in body["responses"] as? [[String: Any]] ?? [] {
            if let range = response["response_range"] as? [String: Any] {
                read += try Self.keyValues(range)
            }
        }
        return (body["succeeded"] as? Bool ?? false, try Self.revision(body), read)
    }

    /// Creates `key` only if it does not exist; true when this call created it.
    public func create(_ key: String, _ value: Data, lease: Int64 = 0) async throws -> Bool {
        try await transaction([.absent(key)], success: [.put(key, value, lease: lease)]).succeeded
    }

    // MARK: Leases

    /// A lease of `ttl` seconds (etcd's minimum is 2); returns its id and the TTL granted.
    public func grantLease(ttl: Int) async throws -> (id: Int64, ttl: Int) {
        guard (2...3600).contains(ttl) else {
            throw Failure(kind: .configuration, description: "lease TTL \(ttl) s: expected 2 to 3600")
        }
        return try Self.granted(try await post("/v3/lease/grant", ["TTL": String(ttl)]), asked: ttl)
    }

    /// The longest TTL Stet takes from etcd's answers: what it asks for at most.
    static let maximumTTL = 3600

    /// A lease grant's id and TTL: the TTL asked for when etcd names none, refused when it names
    /// one out of bounds (etcd never grants more than an hour when asked for at most that).
    package static func granted(_ body: [String: Any], asked ttl: Int) throws -> (id: Int64, ttl: Int) {
        guard let id = (body["ID"] as? String).flatMap(Int64.init), id != 0 else {
            throw Failure(kind: .malformed, description: "etcd granted a lease without an id")
        }
        guard let text = body["TTL"] as? String else { return (id, ttl) }
        guard let granted = try ttlAnswer(text) else {
            throw Failure(kind: .malformed, description: "etcd granted lease \(id) with TTL \(text.prefix(24)), expected 1 to \(maximumTTL) s")
        }
        return (id, granted)
    }

    /// A TTL in an answer: nil when it is 0 or less (the lease is gone); refused beyond an hour.
    static func ttlAnswer(_ text: String) throws -> Int? {
        // `Int(_:)` cannot trap on any text; the length bound only keeps a hostile answer's
        // parse and message short.
        guard text.utf8.count <= 20, let ttl = Int(text) else {
            throw Failure(kind: .malformed, description: "etcd answered a TTL that is not a whole number: \(text.prefix(24))")
        }
        guard ttl > 0 else { return nil }
        guard ttl <= maximumTTL else {
            throw Failure(kind: .malformed, description: "etcd answered a TTL of \(ttl) s, expected at most \(maximumTTL) s")
        }
        return ttl
    }

    /// Renews lease `id`; returns the TTL it has again, or nil when the lease is gone (expired or
    /// revoked: etcd answers without a TTL). `timeout` (seconds, 0.05 to 60) bounds the request
    /// instead of the configured one.
    public func keepAlive(_ id: Int64, timeout: Double? = nil) async throws -> Int? {
        try Self.renewed(try await post("/v3/lease/keepalive", ["ID": String(id)], timeout: timeout))
    }

    /// A keep-alive's answer: the TTL the lease has again, nil when etcd names none (the lease
    /// is gone).
    package static func renewed(_ body: [String: Any]) throws -> Int? {
        let result = body["result"] as? [String: Any] ?? body
        guard let text = result["TTL"] as? String else { return nil }
        return try ttlAnswer(text)
    }

    /// Seconds lease `id` has left, or nil when it is gone.
    public func timeToLive(_ id: Int64) async throws -> Int? {
        try Self.remaining(try await post("/v3/lease/timetolive", ["ID": String(id)]))
    }

    /// A time-to-live answer: the seconds left, nil when the lease is gone (etcd says -1).
    package static func remaining(_ body: [String: Any]) throws -> Int? {
        guard let text = body["TTL"] as? String else { return nil }
        // 0: the lease ends within the second; it is still there.
        if text == "0" { return 0 }
        return try ttlAnswer(text)
    }

    public func revoke(_ id: Int64) async throws {
        _ = try await post("/v3/lease/revoke", ["ID": String(id)])
    }

    // MARK: Requests

    /// Posts `request` to the preferred endpoint, then to the others in turn while they cannot
    /// be reached; an endpoint that answers with an error ends the request.
    func post(_ path: String, _ request: [String: Any], timeout: Double? = nil) async throws -> [String: Any] {
        counts.add(path)
        let milliseconds = timeout.map { $0.isFinite ? Int64(min(max($0, 0.05), 60) * 1000) : configuration.requestMilliseconds }
            ?? configuration.requestMilliseconds
        let data = try JSONSerialization.data(withJSONObject: request)
        let start = preferred.index
        var unreachable: [String] = []
        for offset in 0..<endpoints.count {
            let index = (start + offset) % endpoints.count
            let url = endpoints[index].absoluteString.trimmingCharacters(in: CharacterSet(charactersIn: "/")) + path
            var http = HTTPClientRequest(url: url)
            http.method = .POST
            http.headers.add(name: "Content-Type", value: "application/json")
            http.body = .bytes(ByteBuffer(bytes: data))
            let response: HTTPClientResponse
            let body: ByteBuffer
            do {
                response = try await self.http.execute(http, timeout: .milliseconds(milliseconds))
                body = try await response.body.collect(upTo: configuration.maximumResponse)
            } catch let error as NIOTooManyBytesError {
                throw Failure(kind: .malformed, description: "etcd \(url): answer larger than \(configuration.maximumResponse) bytes (\(error))")
            } catch {
                unreachable.append("\(endpoints[index].absoluteString): \(error)")
                continue
            }
            preferred.index = index
            let object = (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView))) as? [String: Any]
            guard response.status == .ok else {
                let said: String? = (object?["message"] as? String) ?? (object?["error"] as? String)
                let message: String = said ?? "HTTP \(response.status.code)"
                throw Failure(kind: .rejected, description: "etcd \(url): \(message.prefix(300))")
            }
            guard let object else { throw Failure(kind: .malformed, description: "etcd \(url): the answer is not a JSON object") }
            return object
        }
        throw Failure(kind: .unreachable, description: "etcd unreachable: " + unreachable.joined(separator: "; ").prefix(600))
    }

    private func range(_ key: String, end: String?) async throws -> (kvs: [KeyValue], revision: Int64) {
        try Self.checkKey(key)
        var request: [String: Any] = ["key": Wire.b64(key)]
        if let end { request["range_end"] = Wire.b64(end) }
        let body = try await post("/v3/kv/range", request)
        return (try Self.keyValues(body), try Self.revision(body))
    }

    package static func header(_ body: [String: Any]) throws -> [String: Any] {
        guard let header = body["header"] as? [String: Any] else {
            throw Failure(kind: .malformed, description: "etcd answered without a header")
        }
        return header
    }

    /// The store's revision an answer was made at.
    package static func revision(_ body: [String: Any]) throws -> Int64 {
        Int64(try header(body)["revision"] as? String ?? "0") ?? 0
    }

    package static func keyValues(_ body: [String: Any]) throws -> [KeyValue] {
        guard let kvs = body["kvs"] else { return [] }
        guard let list = kvs as? [[String: Any]] else { throw Failure(kind: .malformed, description: "etcd: kvs is not a list") }
        return try list.map(Wire.keyValue)
    }

    static func checkKey(_ key: String) throws(Failure) {
        guard !key.isEmpty, key.utf8.count <= maximumKey, key.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value != 0x7F }) else {
            throw Failure(kind: .configuration, description: "etcd key \"\(key.prefix(80))\": expected 1 to \(maximumKey) printable bytes")
        }
    }

    /// The key just after every key that starts with `prefix` (etcd's range end for a prefix).
    static func prefixEnd(_ prefix: String) -> String {
        var bytes = Array(prefix.utf8)
        while let last = bytes.last {
            if last < 0x7F {
                bytes[bytes.count - 1] = last + 1
                return String(decoding: bytes, as: UTF8.self)
            }
            bytes.removeLast()
        }
        return "\u{0}"
    }

    /// The endpoint that answered last (shared by concurrent requests).
    /// Requests made by this client, by gateway path (`/v3/lease/keepalive`, …; `/v3/watch` once
    /// per watch opened): what a quiet fleet costs etcd.
    public var requests: [String: Int] { counts.value }

    final class Counts: @unchecked Sendable {
        private let lock = NSLock()
        private var counts: [String: Int] = [:]
        func add(_ path: String) { lock.withLock { counts[path, default: 0] += 1 } }
        var value: [String: Int] { lock.withLock { counts } }
    }

    private final class Preferred: @unchecked Sendable {
        private let lock = NSLock()
        private var value = 0
        var index: Int {
            get { lock.withLock { value } }
            set { lock.withLock { value = newValue } }
        }
    }
}

/// The gateway's JSON, both ways.
enum Wire {
    static func b64(_ text: String) -> String { Data(text.utf8).base64EncodedString() }

    static func put(_ key: String, _ value: Data, lease: Int64) throws -> [String: Any] {
        try EtcdClient.checkKey(key)
        guard value.count <= EtcdClient.maximumValue else {
            throw EtcdClient.Failure(kind: .configuration, description: "etcd value for \(key): \(value.count) bytes, at most \(EtcdClient.maximumValue)")
        }
        var request: [String: Any] = ["key": b64(key), "value": value.base64EncodedString()]
        if lease != 0 { request["lease"] = String(lease) }
        return request
    }

    static func compare(_ compare: EtcdClient.Compare) throws -> [String: Any] {
        switch compare {
        case .absent(let key):
            try EtcdClient.checkKey(key)
            return ["key": b64(key), "target": "CREATE", "result": "EQUAL", "create_revision": "0"]
        case .modRevision(let key, let revision):
            try EtcdClient.checkKey(key)
            return ["key": b64(key), "target": "MOD", "result": "EQUAL", "mod_revision": String(revision)]
        case .createRevision(let key, let revision):
            try EtcdClient.checkKey(key)
            return ["key": b64(key), "target": "CREATE", "result": "EQUAL", "create_revision": String(revision)]
        case .value(let key, let value):
            try EtcdClient.checkKey(key)
            return ["key": b64(key), "target": "VALUE", "result": "EQUAL", "value": value.base64EncodedString()]
        }
    }

    static func operation(_ operation: EtcdClient.Operation) throws -> [String: Any] {
        switch operation {
        case .put(let key, let value, let lease): return ["request_put": try put(key, value, lease: lease)]
        case .delete(let key):
            try EtcdClient.checkKey(key)
            return ["request_delete_range": ["key": b64(key)]]
        case .get(let key):
            try EtcdClient.checkKey(key)
            return ["request_range": ["key": b64(key)]]
        }
    }

    /// One `kv` of an answer, every field checked: base64 that decodes, a key in bounds,
    /// revisions that are whole numbers.
    static func keyValue(_ object: [String: Any]) throws -> EtcdClient.KeyValue {
        func number(_ name: String) throws -> Int64 {
            guard let value = object[name] else { return 0 }
            guard let text = value as? String, let number = Int64(text), number >= 0 else {
                throw EtcdClient.Failure(kind: .malformed, description: "etcd: \(name) is not a whole number")
            }
            return number
        }
        guard let keyText = object["key"] as? String, let keyData = Data(base64Encoded: keyText),
            let key = String(data: keyData, encoding: .utf8), !key.isEmpty, keyData.count <= EtcdClient.maximumKey
        else { throw EtcdClient.Failure(kind: .malformed, description: "etcd: a key that is not base64 UTF-8 within bounds") }
        let value: Data
        if let valueText = object["value"] {
            guard let text = valueText as? String, let decoded = Data(base64Encoded: text) else {
                throw EtcdClient.Failure(kind: .malformed, description: "etcd: the value of \(key.prefix(80)) is not base64")
            }
            value = decoded
        } else {
            value = Data()
        }
        return EtcdClient.KeyValue(
            key: key, value: value, createRevision: try number("create_revision"), modRevision: try number("mod_revision"),
            version: try number("version"), lease: try number("lease"))
    }
}
