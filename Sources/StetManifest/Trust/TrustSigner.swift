import Foundation
public import StetCrypto
import StetState

/// Signs `trust.dsse.json` for the repository's `trust.yaml`: the statement that this file is
/// the next version of the policy. Signatures over the same statement accumulate.
public struct TrustSigner: Sendable {
    public struct Result: Sendable, Encodable {
        public var version: Int
        public var policy: String
        public var signatures: Int
        public var signer: String?
        /// The key ids the signature binds, by name: confirm them with their owners.
        public var keys: [String: String]
    }

    public let trustFile: String
    public let key: PrivateKey
    /// The pinned policy, if this host has one: its root keys may sign too.
    public let pinned: TrustPolicy?
    public var force = false

    public init(trustFile: String, key: PrivateKey, pinned: TrustPolicy?) {
        self.trustFile = trustFile
        self.key = key
        self.pinned = pinned
    }

    public func sign() throws -> Result {
        let policy = try TrustPolicy.load(file: trustFile)
        let rootNames = (policy.keys(in: .root) + (pinned?.keys(in: .root) ?? [])).filter { $0.publicKey == key.publicKey }
        if rootNames.isEmpty, !force {
            throw SigningError(message:
                "key \(key.publicKey.keyID) is not a root key of \(trustFile)\(pinned == nil ? "" : " or of the pinned policy"); "
                + "if it is a root key of the policy being replaced, pass --force")
        }
        let statement = TrustRotation(for: policy)
        let path = ((trustFile as NSString).deletingLastPathComponent as NSString).appendingPathComponent(TrustRotation.envelopeName)
        var envelope = Envelope(payloadType: TrustRotation.payloadType, payload: statement.encoded())
        if let bytes = try? InputFile.read(path, limit: InputFile.Limit.trustPolicy), let existing = try? Envelope(json: bytes),
            existing.payloadType == envelope.payloadType, existing.payload == envelope.payload
        {
            envelope = existing
        }
        try envelope.sign(with: key)
        try AtomicFile.write(envelope.json(pretty: true), to: path)
        return Result(
            version: policy.version, policy: policy.digest, signatures: envelope.signatures.count, signer: rootNames.first?.name,
            keys: statement.keys)
    }
}
