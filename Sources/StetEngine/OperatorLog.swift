public import Foundation
public import StetAudit
public import StetCrypto
public import StetManifest
public import StetState

/// Who may act on this host: a key of the `operator` role of the trust policy in force. Every
/// action is signed into the audit log by such a key, so authorising the operator and opening the
/// log are one step: a key outside the role, or a log that fails verification, stops a command
/// before it changes anything.
public enum OperatorLog {
    /// The operator keys the log accepts: those of the pinned policy and of every policy pinned
    /// before it (old entries stay valid after a rotation), and `inForce` (a policy about to be
    /// pinned). With nothing pinned, those of the repository's policy at `repositoryTrust`
    /// (`pinned` false).
    public static func trust(store: FileStateStore, repositoryTrust: String, inForce: TrustPolicy? = nil) throws
        -> (trust: AuditTrust, pinned: Bool)
    {
        var policies = try PinnedTrust.loadWithHistory(from: store)
        let pinned = !policies.isEmpty
        if let inForce { policies.insert(inForce, at: 0) }
        if policies.isEmpty, FileManager.default.fileExists(atPath: repositoryTrust) {
            policies = [try TrustPolicy.load(file: repositoryTrust)]
        }
        // A fleet node signs its own log with its node key.
        let keys = policies.flatMap { policy in
            (policy.keys(in: .operator) + policy.keys(in: .node)).map { (name: $0.name, publicKey: $0.publicKey) }
        }
        return (AuditTrust(keys), pinned)
    }

    /// The trust policy in force for acting: `policy` when the caller resolved one, else the
    /// pinned one, else the repository's.
    public static func policyInForce(store: FileStateStore, repositoryTrust: String, policy: TrustPolicy?) throws -> TrustPolicy? {
        if let policy { return policy }
        if let pinned = try PinnedTrust.load(from: store) { return pinned }
        return FileManager.default.fileExists(atPath: repositoryTrust) ? try TrustPolicy.load(file: repositoryTrust) : nil
    }

    /// Throws `AuditError(.untrustedKey)` unless `keyID` is a key of `role` in `policy`: an
    /// operator key, or for a fleet node (`stet run --cluster`) a node key.
    public static func authorise(_ keyID: String, under policy: TrustPolicy, role: TrustPolicy.Role = .operator) throws {
        guard policy.keys(in: role).contains(where: { $0.publicKey.keyID == keyID }) else {
            // Named as the policy names it, with the roles it has, when the policy knows it.
            let known = policy.keys.first { $0.value.publicKey.keyID == keyID }?.key
            let roles = known.map { name in
                TrustPolicy.Role.allCases.filter { policy.roles[$0]?.keys.contains(name) == true }.map(\.rawValue)
            } ?? []
            let who = known.map { "key \($0)" + (roles.isEmpty ? " (in no role)" : " (role \(roles.joined(separator: ", ")))") }
                ?? "key \(keyID.prefix(16))…, which the trust policy does not name,"
            if role == .node {
                throw AuditError(
                    .untrustedKey,
                    "\(who) is not a node key of the trust policy in force (version \(policy.version)): only hosts whose key is in "
                        + "the node role may join the fleet; add this key to the role in a trust policy signed by the root keys")
            }
            throw AuditError(
                .untrustedKey,
                "\(who) is not an operator key of the trust policy in force (version \(policy.version)); every action is "
                    + "signed into the audit log by a key of the operator role: use one (--key or STET_KEY), or add this key "
                    + "to the role in a trust policy signed by the root keys")
        }
    }

    /// Opens the audit log for `key` once it is an operator key of the policy in force (see
    /// `policyInForce`); `via` is `cli` or `daemon`.
    public static func open(
        store: FileStateStore, repositoryTrust: String, key: PrivateKey, policy: TrustPolicy?, via: String, lockTimeout: Double,
        role: TrustPolicy.Role = .operator
    ) throws -> AuditLog {
        guard let inForce = try policyInForce(store: store, repositoryTrust: repositoryTrust, policy: policy) else {
            throw AuditError(.untrustedKey, "no trust policy: pin one (`stet trust pin`) or pass --trust FILE")
        }
        try authorise(key.publicKey.keyID, under: inForce, role: role)
        return try AuditLog(
            stateDirectory: store.root, trust: try trust(store: store, repositoryTrust: repositoryTrust, inForce: policy).trust,
            key: key, host: Checkpoint.hostName, via: via, release: ReleaseStore(store: store).reference(), lockTimeout: lockTimeout)
    }
}
