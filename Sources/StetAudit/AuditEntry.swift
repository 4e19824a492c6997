public import Foundation

/// One audit entry: the payload of one line of `audit/log.jsonl` (DESIGN.md section 9, a
/// contract). Stet writes the fields in the order declared here.
public struct AuditEntry: Codable, Equatable, Sendable {
    public enum Kind: String, Codable, Sendable, CaseIterable {
        case intent, result, refusal, release, drift, alert, recovery
    }

    public enum Outcome: String, Codable, Sendable {
        case ok, failed, interrupted
    }

    public struct Actor: Codable, Equatable, Sendable {
        /// Hex SHA-256 of the acting key's raw public key (the envelope's keyid).
        public var keyid: String
        /// The key's name in the trust policy.
        public var name: String
        public var host: String
        /// `cli` or `daemon`.
        public var via: String

        public init(keyid: String, name: String, host: String, via: String) {
            self.keyid = keyid
            self.name = name
            self.host = host
            self.via = via
        }
    }

    public struct Release: Codable, Equatable, Sendable {
        /// 0 and an empty digest before any release was accepted.
        public var version: Int
        public var digest: String
        public var commit: String?

        public init(version: Int, digest: String, commit: String? = nil) {
            self.version = version
            self.digest = digest
            self.commit = commit
        }

        public static let none = Release(version: 0, digest: "")
    }

    public var seq: Int
    /// RFC 3339 UTC with milliseconds.
    public var time: String
    /// Hex leaf hash of entry `seq - 1`; empty for entry 0.
    public var prev: String
    public var kind: Kind
    public var actor: Actor
    public var release: Release
    public var plan: String?
    public var change: String?
    public var resource: String?
    public var action: String?
    public var cause: String?
    public var reason: String?
    public var outcome: Outcome?
    public var error: String?
    public var durationMs: Int?

    private enum CodingKeys: String, CodingKey {
        case seq, time, prev, kind, actor, release, plan, change, resource, action, cause, reason, outcome, error,
            durationMs
    }
}

/// What a caller says about an entry; the log fills in `seq`, `time`, `prev` and `actor`.
public struct AuditRecord: Sendable, Equatable {
    public var kind: AuditEntry.Kind
    public var release: AuditEntry.Release
    public var plan: String?
    public var change: String?
    public var resource: String?
    public var action: String?
    public var cause: String?
    public var reason: String?
    public var outcome: AuditEntry.Outcome?
    public var error: String?
    public var durationMs: Int?

    public init(
        kind: AuditEntry.Kind, release: AuditEntry.Release, plan: String? = nil, change: String? = nil,
        resource: String? = nil, action: String? = nil, cause: String? = nil, reason: String? = nil,
        outcome: AuditEntry.Outcome? = nil, error: String? = nil, durationMs: Int? = nil
    ) {
        self.kind = kind
        self.release = release
        self.plan = plan
        self.change = change
        self.resource = resource
        self.action = action
        self.cause = cause
        self.reason = reason
        self.outcome = outcome
        self.error = error
        self.durationMs = durationMs
    }

    func entry(seq: Int, time: String, prev: String, actor: AuditEntry.Actor) -> AuditEntry {
        AuditEntry(
            seq: seq, time: time, prev: prev, kind: kind, actor: actor, release: release, plan: plan, change: change,
            resource: resource, action: action, cause: cause, reason: reason, outcome: outcome, error: error,
            durationMs: durationMs)
    }
}

extension AuditEntry {
    /// The DSSE payload type of audit lines.
    public static let payloadType = "application/vnd.stet.audit+json"

    private static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        return encoder
    }()

    /// The payload bytes: compact JSON, fields in declaration order.
    public func payload() throws -> Data { try Self.encoder.encode(self) }

    /// Decodes a payload. Throws `DecodingError`.
    public static func decode(payload: Data) throws -> AuditEntry {
        try JSONDecoder().decode(AuditEntry.self, from: payload)
    }
}
