import Foundation
import StetAudit
import StetCore
import StetCrypto
import StetEngine
import StetManifest
import StetState

/// The audit log as commands use it: which keys it trusts, and the release in force entries name.
enum AuditContext {
    /// The operator keys the log accepts (`OperatorLog.trust`).
    static func trust(global: GlobalOptions, inForce current: TrustPolicy? = nil) throws -> (trust: AuditTrust, pinned: Bool) {
        try OperatorLog.trust(store: global.store, repositoryTrust: global.trust, inForce: current)
    }

    /// The release in force, as audit entries record it.
    static func acceptedRelease(_ store: FileStateStore) -> ReleaseRef { ReleaseStore(store: store).reference() }
}

/// An acting command's link to the audit log, opened before it changes anything: a log that
/// fails verification, or a key outside the operator role, stops the command first.
struct OperatorSession {
    let log: AuditLog
    let store: FileStateStore

    /// Opens the log for `key` under the trust policy in force (`policy`, if the command has
    /// resolved one).
    init(global: GlobalOptions, key: PrivateKey, policy: TrustPolicy?, via: String = "cli", role: TrustPolicy.Role = .operator) throws {
        self.init(log: try OperatorLog.open(
            store: global.store, repositoryTrust: global.trust, key: key, policy: policy, via: via, lockTimeout: global.lockTimeout,
            role: role),
            store: global.store)
    }

    private init(log: AuditLog, store: FileStateStore) {
        self.log = log
        self.store = store
        // The command goes on: the log restarted after the damage, which stays visible.
        for damage in log.damages {
            Terminal.standardError.warning("the audit log was damaged and restarted at \(damage.time): \(damage.summary)")
        }
    }

    /// Accepting releases through this session's log.
    var acceptance: ReleaseAcceptance { ReleaseAcceptance(store: store, audit: log) }

    /// Records a refusal under the release in force.
    func refused(action: String, reason: String, error: String) throws {
        try acceptance.recordRefusal(action: action, reason: reason, error: error)
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
    /// The release path of every acting command (`ReleaseAcceptance.open`): resolves the trust
    /// policy, opens the audit log as an operator of it, and verifies the release, recording any
    /// refusal. Accepts nothing.
    static func verified(gate: ReleaseGate, global: GlobalOptions, key: PrivateKey, action: String, directory: String)
        throws -> (OperatorSession, ReleaseGate.Passed)
    {
        let (acceptance, passed) = try ReleaseAcceptance.open(
            gate, by: ReleaseAcceptance.Operator(key: key, repositoryTrust: global.trust, lockTimeout: global.lockTimeout),
            action: action, source: directory, now: Date())
        return (OperatorSession(log: acceptance.audit, store: acceptance.store), passed)
    }

    /// Accepts `passed` (the caller holds the state lock; `ReleaseAcceptance.acceptNewest`).
    @discardableResult
    func accept(_ passed: ReleaseGate.Passed, gate: ReleaseGate, commit: String? = nil, evenIfAccepted: Bool = false) throws
        -> ReleaseRef
    {
        try acceptance.acceptNewest(passed, gate: gate, commit: commit, evenIfAccepted: evenIfAccepted, now: Date())
    }

    /// The session of an apply (`ApplyRelease.open`).
    init(_ apply: ApplyRelease) { self.init(log: apply.acceptance.audit, store: apply.acceptance.store) }

    /// The session of a command that acts on the release in force (`down`, `drill`, `restore`,
    /// `apply` of a saved plan for it), and that release, its copy verified again under the
    /// pinned policy. Throws when no release is in force: such a command has nothing to act on.
    static func inForce(global: GlobalOptions, key: PrivateKey) throws -> (OperatorSession, ReleaseStore.InForce) {
        let session = try OperatorSession(global: global, key: key, policy: nil)
        guard let inForce = try ReleaseStore(store: global.store).inForce(trustFile: global.trust, now: Date()) else {
            try? session.close()
            throw CommandFailure(
                status: ExitStatus.error,
                message: "no release is in force in \(global.store.root): accept one first (`stet apply`, or `stet verify --accept`)")
        }
        return (session, inForce)
    }
}
