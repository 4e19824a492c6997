import Foundation
import StetAudit
import StetCore
import StetCrypto
import StetEngine
import StetManifest
import StetState

/// The audit log as commands use it: which keys it trusts, and a session that signs entries
/// with the operator's key.
enum AuditContext {
    /// The operator keys the log accepts: those of the pinned policy and of the policies pinned
    /// before it; with nothing pinned, those of the repository's policy (`pinned` false).
    static func trust(global: GlobalOptions, inForce current: TrustPolicy? = nil) throws -> (trust: AuditTrust, pinned: Bool) {
        var policies = try PinnedTrust.loadWithHistory(from: global.store)
        let pinned = !policies.isEmpty
        if let current { policies.insert(current, at: 0) }
        if policies.isEmpty, FileManager.default.fileExists(atPath: global.trust) {
            policies = [try TrustPolicy.load(file: global.trust)]
        }
        let keys = policies.flatMap { policy in policy.keys(in: .operator).map { (name: $0.name, publicKey: $0.publicKey) } }
        return (AuditTrust(keys), pinned)
    }

    /// The accepted release, as audit entries record it.
    static func acceptedRelease(_ store: FileStateStore) -> ReleaseRef {
        guard let accepted = try? AcceptedRelease.load(from: store) else { return .none }
        var release = accepted.release
        release.commit = GitSource.acceptedCommit(digest: accepted.digest, store: store)
        return release
    }
}

/// An acting command's link to the audit log, opened before it changes anything: a log that
/// fails verification, or a key outside the operator role, stops the command first.
struct OperatorSession {
    let log: AuditLog
    let store: FileStateStore

    /// Opens the log for `key` under the trust policy in force (`policy`, if the command has
    /// resolved one).
    init(global: GlobalOptions, key: PrivateKey, policy: TrustPolicy?, via: String = "cli") throws {
        store = global.store
        // Old operators' entries stay valid, but only an operator of the policy in force acts.
        let inForce = try policy ?? PinnedTrust.load(from: store)
            ?? (FileManager.default.fileExists(atPath: global.trust) ? TrustPolicy.load(file: global.trust) : nil)
        guard let inForce else {
            throw AuditError(.untrustedKey, "no trust policy: pin one (`stet trust pin`) or pass --trust FILE")
        }
        guard inForce.keys(in: .operator).contains(where: { $0.publicKey == key.publicKey }) else {
            throw AuditError(
                .untrustedKey,
                "key \(key.publicKey.keyID.prefix(16))… is not an operator key of the trust policy in force (version "
                    + "\(inForce.version)); every action is signed into the audit log by a key of the operator role")
        }
        log = try AuditLog(
            stateDirectory: store.root, trust: try AuditContext.trust(global: global, inForce: policy).trust, key: key,
            host: Checkpoint.hostName, via: via, release: AuditContext.acceptedRelease(store),
            lockTimeout: global.lockTimeout)
        // The command goes on: the log restarted after the damage, which stays visible.
        for damage in log.damages {
            Terminal.standardError.warning("the audit log was damaged and restarted at \(damage.time): \(damage.summary)")
        }
    }

    /// Records a refusal under the release in force.
    func refused(action: String, reason: String, error: String, release: ReleaseRef? = nil) throws {
        try log.append(AuditRecord(
            kind: .refusal, release: release ?? AuditContext.acceptedRelease(store), action: action, reason: reason,
            outcome: .failed, error: error))
    }

    func close() throws { try log.close() }

    /// Records a refusal that happened before the command could open a session for its trust
    /// policy, using the policy already pinned (or the repository's). When even that is not
    /// possible, says why on standard error: the refusal stands either way.
    static func recordEarlyRefusal(global: GlobalOptions, key: PrivateKey, action: String, reason: String, error: String) {
        do {
            let session = try OperatorSession(global: global, key: key, policy: nil)
            try session.refused(action: action, reason: reason, error: error)
            try session.close()
        } catch {
            Terminal.standardError.warning("the refusal could not be recorded in the audit log: \(error)")
        }
    }
}

extension OperatorSession {
    /// The release path of every acting command: resolves the trust policy, opens the audit log
    /// as an operator of it, and verifies the release, recording any refusal. Accepts nothing.
    static func verified(gate: ReleaseGate, global: GlobalOptions, key: PrivateKey, action: String, directory: String)
        throws -> (OperatorSession, ReleaseGate.Passed)
    {
        let decision: TrustDecision
        do {
            decision = try gate.resolveTrust(acting: true)
        } catch let refused as ReleaseGate.Refused {
            recordEarlyRefusal(
                global: global, key: key, action: action, reason: "the trust policy was refused",
                error: "\(refused.error.code.rawValue): \(refused.error.message)")
            throw refused
        }
        let session = try OperatorSession(global: global, key: key, policy: decision.policy)
        do {
            return (session, try gate.verify(trust: decision, now: Date()))
        } catch let refused as ReleaseGate.Refused {
            try session.refused(
                action: action,
                reason: "release" + (refused.report?.version.map { " version \($0)" } ?? "") + " in \(directory) was refused",
                error: "\(refused.error.code.rawValue): \(refused.error.message)")
            try session.close()
            throw refused
        } catch let invalid as ManifestError {
            try session.refused(
                action: action, reason: "the signed release in \(directory) has manifests that do not parse",
                error: invalid.description)
            try session.close()
            throw invalid
        }
    }

    /// Records the release as accepted (a `release` entry first, then the state), unless it is
    /// the accepted one already and `evenIfAccepted` is false.
    func accept(_ passed: ReleaseGate.Passed, gate: ReleaseGate, evenIfAccepted: Bool = false, commit: String? = nil) throws {
        var release = passed.release.release
        release.commit = commit
        let current = AuditContext.acceptedRelease(store)
        if !evenIfAccepted, current.isSameRelease(as: release), current.commit == commit || commit == nil, !passed.trust.needsPinning { return }
        try log.append(AuditRecord(
            kind: .release, release: release, action: "accept-release",
            reason: "release version \(release.version) accepted under trust policy version \(passed.trust.policy.version)"
                + (commit.map { " from commit \($0)" } ?? "") + (passed.trust.needsPinning ? " (pinned now)" : ""),
            outcome: .ok))
        try gate.accept(passed, now: Date())
        if let commit { try GitSource.recordAccepted(digest: release.digest, commit: commit, store: store) }
    }
}
