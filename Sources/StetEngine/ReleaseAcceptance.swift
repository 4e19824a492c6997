public import Foundation
public import StetAudit
public import StetCore
public import StetCrypto
public import StetManifest
public import StetState

/// Accepting a release (docs/architecture.md, "Signed releases"): the one path of `verify --accept`, `apply`, the
/// reconcile loop and, later, a fleet. In order:
///
/// 1. resolve the trust policy in force (pinned, rotated by a signed statement, or pinned now on
///    first use);
/// 2. authorise the operator: only a key of that policy's operator role acts, and the audit
///    log is opened for it (`OperatorLog`);
/// 3. verify the release under that policy and parse its manifests;
/// 4. record a refusal (the trust policy, the release, or a signed release whose manifests do not
///    parse): nothing else changes, and the release in force stays;
/// 5. accept, under the state lock: keep the release's copy (`ReleaseStore`, inert until named),
///    then the `release` audit entry, then the state (the pinned policy, `release.json`), then
///    the commit it came from. A release older than the one in force by then (another process
///    accepted a newer one meanwhile) is not accepted.
///
/// Steps 1 and 3 only read (`check`): the loop runs them on its release thread. Steps 4 and 5
/// write, on the caller's thread. A file the host could not read is no refusal: it is thrown
/// (`InputFile.Failure`, `StateError`) and nothing is recorded.
public struct ReleaseAcceptance: Sendable {
    public let store: FileStateStore
    public let audit: AuditLog
    /// The role the log's key must have to accept: `operator`, or `node` for a fleet node's loop.
    public var role: TrustPolicy.Role = .operator

    public init(store: FileStateStore, audit: AuditLog) {
        self.store = store
        self.audit = audit
    }

    /// What steps 1 and 3 found.
    public enum Check: Sendable {
        case passed(ReleaseGate.Passed)
        /// The trust policy (no report) or the release was refused.
        case refused(ReleaseGate.Refused)
        /// A signed release whose manifests do not parse (or a repository trust policy that does not).
        case invalid(ManifestError)
    }

    /// Steps 1 and 3, reading only. Throws what the host could not read (`InputFile.Failure`,
    /// `StateError`): no verdict.
    public static func check(_ gate: ReleaseGate, now: Date) throws -> Check {
        do {
            let decision = try gate.resolveTrust(acting: true)
            return .passed(try gate.verify(trust: decision, now: now))
        } catch let refused as ReleaseGate.Refused {
            return .refused(refused)
        } catch let invalid as ManifestError {
            return .invalid(invalid)
        }
    }

    /// The operator of a command, for steps 2 and 4.
    public struct Operator: Sendable {
        public let key: PrivateKey
        /// The repository's trust.yaml (its keys count only while nothing is pinned).
        public let repositoryTrust: String
        public let via: String
        public let lockTimeout: Double

        public init(key: PrivateKey, repositoryTrust: String, via: String = "cli", lockTimeout: Double) {
            self.key = key
            self.repositoryTrust = repositoryTrust
            self.via = via
            self.lockTimeout = lockTimeout
        }
    }

    /// A refusal that could not be written to the audit log (the key is no operator of any policy
    /// that could record it): it stands all the same, and `reason` says why it is not recorded.
    public struct Unrecorded: Error, Sendable {
        public let refusal: any Error
        public let reason: String
    }

    /// Steps 1 to 4 for a command: resolves trust, opens the audit log for the operator under
    /// it, verifies, and records a refusal before throwing it (`ReleaseGate.Refused` or
    /// `ManifestError`). A refused trust policy is recorded under the policy already pinned (or
    /// the repository's); when the key is no operator there either, it throws `Unrecorded`.
    /// `source` names where the release came from in entries (a directory, a commit).
    public static func open(
        _ gate: ReleaseGate, by acting: Operator, action: String, source: String, now: Date
    ) throws -> (ReleaseAcceptance, ReleaseGate.Passed) {
        let decision: TrustDecision
        do {
            decision = try gate.resolveTrust(acting: true)
        } catch let refused as ReleaseGate.Refused {
            let error = "\(refused.error.code.rawValue): \(refused.error.message)"
            do {
                let audit = try OperatorLog.open(
                    store: gate.store, repositoryTrust: acting.repositoryTrust, key: acting.key, policy: nil, via: acting.via,
                    lockTimeout: acting.lockTimeout)
                defer { try? audit.close() }
                try ReleaseAcceptance(store: gate.store, audit: audit).recordRefusal(
                    action: action, reason: "the trust policy was refused", error: error)
            } catch {
                throw Unrecorded(refusal: refused, reason: "\(error)")
            }
            throw refused
        }
        let audit = try OperatorLog.open(
            store: gate.store, repositoryTrust: acting.repositoryTrust, key: acting.key, policy: decision.policy, via: acting.via,
            lockTimeout: acting.lockTimeout)
        let acceptance = ReleaseAcceptance(store: gate.store, audit: audit)
        do {
            return (acceptance, try gate.verify(trust: decision, now: now))
        } catch let refused as ReleaseGate.Refused {
            try acceptance.record(.refused(refused), action: action, source: source)
            try audit.close()
            throw refused
        } catch let invalid as ManifestError {
            try acceptance.record(.invalid(invalid), action: action, source: source)
            try audit.close()
            throw invalid
        }
    }

    /// Step 4: records what `check` refused, under the release in force. Nothing for `passed`.
    public func record(_ check: Check, action: String, source: String) throws {
        let inForce = ReleaseStore(store: store).reference()
        let stays = inForce.isNone ? "" : "; release version \(inForce.version) stays in force"
        switch check {
        case .passed:
            return
        case .refused(let refused) where refused.report == nil:
            try recordRefusal(
                action: action, reason: "the trust policy for the release in \(source) was refused" + stays,
                error: "\(refused.error.code.rawValue): \(refused.error.message)")
        case .refused(let refused):
            try recordRefusal(
                action: action,
                reason: "release" + (refused.report?.version.map { " version \($0)" } ?? "") + " in \(source) was refused" + stays,
                error: "\(refused.error.code.rawValue): \(refused.error.message)")
        case .invalid(let invalid):
            try recordRefusal(
                action: action, reason: "the signed release in \(source) has manifests that do not parse" + stays,
                error: invalid.description)
        }
    }

    /// A refusal entry under the release in force.
    public func recordRefusal(action: String, reason: String, error: String) throws {
        try audit.append(AuditRecord(
            kind: .refusal, release: ReleaseStore(store: store).reference(), action: action, reason: reason, outcome: .failed,
            error: error))
    }

    /// What step 5 decided.
    public enum Decision: Sendable, Equatable {
        /// Recorded, and now in force.
        case accepted(ReleaseRef)
        /// The release in force already; nothing recorded (its copy is kept again if it was
        /// missing or changed).
        case inForce(ReleaseRef)
        /// Another process accepted a newer release (or another with the same version) since
        /// this one was verified: nothing recorded, and that one stays in force.
        case superseded(by: ReleaseRef)

        public var release: ReleaseRef {
            switch self {
            case .accepted(let release), .inForce(let release), .superseded(let release): release
            }
        }
    }

    /// Step 5, with the state lock held by the caller. `commit` is the git commit the release
    /// came from. With `evenIfAccepted`, the release in force is recorded again (`verify
    /// --accept` says so in the log each time it is asked).
    public func accept(
        _ passed: ReleaseGate.Passed, gate: ReleaseGate, commit: String?, evenIfAccepted: Bool = false, now: Date
    ) throws -> Decision {
        // Step 2 again: the policy may have rotated since the log was opened (the loop's).
        try OperatorLog.authorise(audit.signerKeyID, under: passed.trust.policy, role: role)
        let releases = ReleaseStore(store: store)
        var release = passed.release.release
        release.commit = commit
        if let current = try AcceptedRelease.load(from: store), !current.release.isSameRelease(as: release),
            current.version >= release.version
        {
            var newer = current.release
            newer.commit = releases.commit(of: newer.digest)
            return .superseded(by: newer)
        }
        let inForce = releases.reference()
        if inForce.isSameRelease(as: release), commit == nil || commit == inForce.commit, !passed.trust.needsPinning, !evenIfAccepted {
            // Its copy as verified now: kept if it was missing (accepted by an earlier Stet) or
            // no longer the same; untouched otherwise.
            try releases.save(passed.release)
            return .inForce(inForce)
        }
        try releases.save(passed.release)
        try audit.append(AuditRecord(
            kind: .release, release: release, action: "accept-release",
            reason: "release version \(release.version) accepted under trust policy version \(passed.trust.policy.version)"
                + (commit.map { " from commit \($0)" } ?? "") + (passed.trust.needsPinning ? " (pinned now)" : ""),
            outcome: .ok))
        try gate.record(passed, now: now)
        if let commit { try releases.recordCommit(commit, of: release.digest) }
        return .accepted(release)
    }

    /// Step 5 for a command: `accept`, where a newer release accepted meanwhile (which cannot
    /// happen under the lock, but would be a refusal, not a silent success) throws
    /// `VerificationError(.rollback)`. Returns the release in force.
    public func acceptNewest(
        _ passed: ReleaseGate.Passed, gate: ReleaseGate, commit: String?, evenIfAccepted: Bool = false, now: Date
    ) throws -> ReleaseRef {
        let decision = try accept(passed, gate: gate, commit: commit, evenIfAccepted: evenIfAccepted, now: now)
        if case .superseded(let newer) = decision {
            throw VerificationError(
                .rollback, "release version \(passed.release.release.version) is older than version \(newer.version), accepted meanwhile")
        }
        return decision.release
    }
}
