public import Foundation
public import StetCore
import StetCrypto
import StetManifest
public import StetPlanner
import StetProviders
public import StetState

/// An unsigned proposal previewed before anyone signs it (`stet plan --proposal DIR`): the
/// manifests of a pull request, parsed and checked as `stet validate` does, compared field by
/// field with the release in force (`DesiredDiff`), and planned against the host's observed
/// state, observed here or read from a signed snapshot (`ObservedSnapshot`).
///
/// Read-only and unsigned: nothing in the state directory changes, nothing is audited (a
/// preview decides nothing), and the proposal's content never runs: the host is observed with
/// the release in force (its health checks and repositories, which reviewers signed), never
/// with the proposal's. The plan names no release (`ReleaseRef.none`), so no saved plan made
/// from it could be admitted for any release (`PlanFile.admit`); the CLI never saves it.
public struct Proposal: Sendable {
    public let directory: String
    public let desired: DesiredState
    /// The release the diff is against; nil when none is in force and no base was given.
    public let base: Base?
    public let diff: DesiredDiff
    public let plan: Plan
    /// Where the observed state came from.
    public let source: Source

    public enum Source: Sendable {
        /// Observed on this host, with the release in force.
        case host(at: Date)
        /// Read from a snapshot signed by `signer`.
        case snapshot(ObservedSnapshot, signer: String, file: String)
    }

    /// A verified release the proposal is compared with: the one in force here, or the signed
    /// release in `--base DIR` (the target branch's manifests, in CI).
    public struct Base: Sendable {
        public let release: ReleaseRef
        public let desired: DesiredState
        /// `in force`, or `in DIR`.
        public let place: String
    }

    /// Said above the preview: the snapshot was taken under another release than the base.
    public let warnings: [String]

    /// Where the observed state comes from: this host, or a signed snapshot file.
    public enum Observation: Sendable {
        case host
        case snapshot(file: String, maxAge: StetDuration)
    }

    /// Makes the preview. Throws `ManifestError` (the proposal does not validate, exit 1),
    /// `ObservedSnapshot.Refused` (exit 10), a refusal of the copy of the release in force
    /// (`VerificationError`), `InputFile.Failure` and what the host could not read.
    ///
    /// `base`, when given, is a directory holding a signed release (the target branch's
    /// manifests), verified read-only as `stet verify` does (a refusal throws
    /// `ReleaseGate.Refused`, exit 10); the diff is against it instead of the release in force.
    public static func make(
        directory: String, base baseDirectory: String? = nil, store: FileStateStore, trustFile: String, observation: Observation,
        prune: Bool, now: Date
    ) async throws -> Proposal {
        // Unsigned input, possibly read on the host as root: a link out of the directory
        // (`x.yaml -> /etc/shadow`) is refused before any file is read, so no host file is
        // parsed and quoted in an error or a diff.
        let folder = ManifestDirectory(path: directory)
        let outside = try folder.list().symlinks.filter { !folder.staysInside($0) }
        guard outside.isEmpty else {
            throw ManifestError(outside.map {
                Diagnostic(location: SourceLocation(file: "\(directory)/\($0)", line: 1, column: 1), field: "",
                           message: "a symbolic link out of the proposal's directory; a proposal is read only inside its directory")
            })
        }
        let desired = try ManifestLoader.load(directory: directory)
        let inForce = try ReleaseStore(store: store).inForce(trustFile: trustFile, now: now)
        var base = inForce.map { Base(release: $0.accepted.release, desired: $0.desired, place: "in force") }
        if let baseDirectory {
            let passed = try ReleaseGate(manifests: baseDirectory, trustFile: trustFile, store: store).open(accept: false, now: now)
            base = Base(release: passed.release.release.withoutCommit, desired: passed.desired, place: "in \(baseDirectory)")
        }
        let observed: ObservedState
        let source: Source
        switch observation {
        case .host:
            observed = try await HostProvider(store: store).observe(inForce?.desired ?? DesiredState(), now: now)
            source = .host(at: now)
        case .snapshot(let file, let maxAge):
            guard let policy = try OperatorLog.policyInForce(store: store, repositoryTrust: trustFile, policy: nil) else {
                throw ObservedSnapshot.Refused(message: "\(file): no trust policy to check its signature with: pin one or pass --trust FILE")
            }
            guard let data = try InputFile.read(file, limit: InputFile.Limit.plan) else {
                throw InputFile.Failure(path: file, message: "no such file")
            }
            let (snapshot, signer) = try ObservedSnapshot.open(
                data, source: file, operators: policy.keys(in: .operator).map { ($0.name, $0.publicKey) }, maxAge: maxAge, now: now)
            observed = snapshot.observed
            source = .snapshot(snapshot, signer: signer, file: file)
        }
        var warnings: [String] = []
        if case .snapshot(let snapshot, _, let file) = source, let base, !snapshot.release.isSameRelease(as: base.release) {
            warnings.append("\(file) was taken with " + (snapshot.release.isNone ? "no release" : "release version \(snapshot.release.version)")
                + " in force on \(snapshot.host), not release version \(base.release.version) (\(base.place)): the field diff and the plan compare different releases")
        }
        let plan = Planner(prune: prune).plan(desired: desired, observed: observed, release: .none, now: now)
        return Proposal(
            directory: directory, desired: desired, base: base, diff: DesiredDiff(from: base?.desired ?? DesiredState(), to: desired),
            plan: plan, source: source, warnings: warnings)
    }

    /// The report people read (`ProposalReport`: text and markdown).
    public var report: ProposalReport {
        let base = base.map { "release version \($0.release.version) (\($0.release.digest)), \($0.place)" }
            ?? "no release (none is in force here and no --base was given: every resource is new)"
        let observed = switch source {
        case .host(let at): "this host at \(RFC3339.format(at))"
        case .snapshot(let snapshot, let signer, let file):
            "\(file), taken on \(snapshot.host) at \(RFC3339.format(snapshot.createdAt)) with "
                + (snapshot.release.isNone ? "no release" : "release version \(snapshot.release.version)") + " in force, signed by \(signer)"
        }
        var report = ProposalReport(diff: diff, plan: plan, base: base, observed: observed)
        report.warnings = warnings
        return report
    }

    /// The JSON of `stet plan --proposal --format json`: not a plan (no id, no release, no
    /// format version), so it can never be mistaken for one.
    public struct JSON: Encodable, Sendable {
        public let proposal: String
        public let applicable: Bool
        public let base: ReleaseRef?
        public let observed: Observed
        public let diff: [DesiredDiff.Resource]
        public let changes: [Change]
        public let notices: [Notice]
        public let warnings: [String]

        public struct Observed: Encodable, Sendable {
            public let source: String
            public let host: String?
            public let at: String
            public let release: ReleaseRef?
            public let signer: String?
        }
    }

    public var json: JSON {
        let observed = switch source {
        case .host(let at): JSON.Observed(source: "host", host: nil, at: RFC3339.format(at), release: nil, signer: nil)
        case .snapshot(let snapshot, let signer, let file):
            JSON.Observed(source: file, host: snapshot.host, at: RFC3339.format(snapshot.createdAt), release: snapshot.release, signer: signer)
        }
        return JSON(
            proposal: directory, applicable: false, base: base?.release, observed: observed, diff: diff.resources,
            changes: plan.changes, notices: plan.notices, warnings: warnings)
    }
}
