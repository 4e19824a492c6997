public import Foundation
import StetCrypto
import StetState

/// The payload of `keys/trust.dsse.json`: "policy version N+1 is the trust.yaml with this
/// digest, and its keys are exactly these", signed by the root thresholds of both the pinned and
/// the new policy. `keys` binds the key material: trust.yaml only names key files, which anyone
/// who can push could replace after the rotation was signed.
public struct TrustRotation: Codable, Equatable, Sendable {
    public static let type = "stet.trust/v1"
    public static let payloadType = "application/vnd.stet.trust+json"
    public static let envelopeName = "trust.dsse.json"

    public var type: String
    public var version: Int
    public var policy: String
    /// Every key of the new policy by name, with its key id (hex SHA-256 of the raw public key).
    public var keys: [String: String]

    public init(version: Int, policy: String, keys: [String: String]) {
        type = Self.type
        self.version = version
        self.policy = policy
        self.keys = keys
    }

    /// The statement for `policy`: its version, digest and every key's id.
    public init(for policy: TrustPolicy) {
        self.init(version: policy.version, policy: policy.digest, keys: policy.keys.mapValues { $0.publicKey.keyID })
    }

    public func encoded() -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return try! encoder.encode(self)
    }
}

/// Which trust policy governs a verification, and why.
public struct TrustDecision: Sendable {
    public enum Source: Sendable, Equatable {
        /// The pinned policy, unchanged.
        case pinned
        /// The repository's policy, accepted as a signed rotation from `from`.
        case rotated(from: Int)
        /// Nothing pinned; the repository's policy is pinned now, as the operator asked
        /// (`--trust-on-first-use`).
        case firstUse
        /// Nothing pinned and nothing will be: a read-only check against the repository's policy.
        case unpinned
    }

    public let policy: TrustPolicy
    public let source: Source

    /// True when the caller must store `policy` as the new pinned policy.
    public var needsPinning: Bool { source != .pinned && source != .unpinned }
}

public enum TrustResolver {
    /// Decides the policy in force. `repository` is the repository's `trust.yaml` (nil if it has
    /// none), `rotation` the bytes of its `trust.dsse.json` (nil if absent). Refusals leave the
    /// pinned policy in force and throw `VerificationError` with the cause.
    public static func resolve(
        repository: TrustPolicy?, rotation: Data?, pinned: TrustPolicy?, acting: Bool, trustOnFirstUse: Bool,
        stateDirectory: String
    ) throws(VerificationError) -> TrustDecision {
        guard let pinned else {
            guard let repository else {
                throw VerificationError(.trustNotPinned, "no trust policy is pinned in \(stateDirectory)/trust and none was found to read")
            }
            if !acting { return TrustDecision(policy: repository, source: .unpinned) }
            guard trustOnFirstUse else {
                throw VerificationError(
                    .trustNotPinned,
                    "no trust policy is pinned in \(stateDirectory)/trust. Pin one explicitly with "
                        + "`stet trust pin keys/trust.yaml` after checking the key ids it prints with their owners, "
                        + "or pass --trust-on-first-use to pin the repository's policy now")
            }
            return TrustDecision(policy: repository, source: .firstUse)
        }
        guard let repository, !repository.sameAuthority(as: pinned) else {
            return TrustDecision(policy: pinned, source: .pinned)
        }
        guard let rotation else {
            throw VerificationError(
                .trustChangedWithoutRotation,
                "the repository's trust policy (version \(repository.version)) differs from the pinned one "
                    + "(version \(pinned.version)) and there is no \(TrustRotation.envelopeName) signed by the root keys; "
                    + "the pinned policy stays in force")
        }
        try verifyRotation(rotation, repository: repository, pinned: pinned)
        return TrustDecision(policy: repository, source: .rotated(from: pinned.version))
    }

    package static func verifyRotation(_ bytes: Data, repository: TrustPolicy, pinned: TrustPolicy) throws(VerificationError) {
        let envelope: Envelope
        do {
            envelope = try Envelope(json: bytes)
        } catch {
            throw VerificationError(.rotationMalformed, "\(TrustRotation.envelopeName) is not a DSSE envelope: \(error)")
        }
        guard envelope.payloadType == TrustRotation.payloadType else {
            throw VerificationError(
                .rotationMalformed,
                "\(TrustRotation.envelopeName) has payloadType \"\(envelope.payloadType)\", expected \"\(TrustRotation.payloadType)\"")
        }
        let statement: TrustRotation
        do {
            try StrictJSON.checkUniqueKeys(envelope.payload)
            statement = try JSONDecoder().decode(TrustRotation.self, from: envelope.payload)
        } catch {
            throw VerificationError(.rotationMalformed, "\(TrustRotation.envelopeName) payload is not valid: \(describeDecoding(error))")
        }
        guard statement.type == TrustRotation.type else {
            throw VerificationError(.rotationMalformed, "\(TrustRotation.envelopeName) has type \"\(statement.type)\", expected \"\(TrustRotation.type)\"")
        }
        guard statement.policy == repository.digest else {
            throw VerificationError(
                .rotationDigestMismatch,
                "\(TrustRotation.envelopeName) signs policy \(statement.policy), but trust.yaml is \(repository.digest)")
        }
        guard pinned.version < Int.max, statement.version == pinned.version + 1, repository.version == statement.version else {
            throw VerificationError(
                .rotationVersion,
                "a rotation must go from the pinned version \(pinned.version) to exactly \(pinned.version &+ 1); "
                    + "\(TrustRotation.envelopeName) says \(statement.version) and trust.yaml says \(repository.version)")
        }
        try verifyKeys(statement.keys, of: repository)
        let oldRoots = envelope.validSigners(among: pinned.keys(in: .root).map(\.publicKey))
        guard oldRoots.count >= pinned.threshold(of: .root) else {
            throw VerificationError(
                .rotationOldRootThreshold,
                "the rotation has \(oldRoots.count) valid signature(s) from the pinned root keys; "
                    + "\(pinned.threshold(of: .root)) needed (\(pinned.roles[.root]?.keys.joined(separator: ", ") ?? ""))")
        }
        let newRoots = envelope.validSigners(among: repository.keys(in: .root).map(\.publicKey))
        guard newRoots.count >= repository.threshold(of: .root) else {
            throw VerificationError(
                .rotationNewRootThreshold,
                "the rotation has \(newRoots.count) valid signature(s) from the new policy's root keys; "
                    + "\(repository.threshold(of: .root)) needed (\(repository.roles[.root]?.keys.joined(separator: ", ") ?? ""))")
        }
    }

    /// Every key of the new policy must be named in the signed statement with the id of the key
    /// file read now, and the statement may name no other key.
    static func verifyKeys(_ signed: [String: String], of repository: TrustPolicy) throws(VerificationError) {
        for name in repository.keys.keys.sorted() {
            let actual = repository.keys[name]!.publicKey.keyID
            guard let expected = signed[name] else {
                throw VerificationError(
                    .rotationKeyMissing,
                    "key \(name) of trust.yaml is not named in \(TrustRotation.envelopeName): the rotation does not cover it; "
                        + "the root keys must sign the rotation again (`stet trust sign`)")
            }
            guard expected == actual else {
                throw VerificationError(
                    .rotationKeyMismatch,
                    "key \(name): its public key file has id \(actual), but the rotation signed \(expected); "
                        + "the key file was replaced after the rotation was signed. The pinned policy stays in force")
            }
        }
        if let extra = signed.keys.sorted().first(where: { repository.keys[$0] == nil }) {
            throw VerificationError(
                .rotationKeyMissing, "\(TrustRotation.envelopeName) names key \(extra), which trust.yaml does not have")
        }
    }
}
