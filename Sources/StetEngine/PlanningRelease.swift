public import Foundation
public import StetCore
public import StetManifest
public import StetState

/// The release `stet plan` plans against. The release in force is the desired state; the
/// working directory's (or the git source's) release matters only as a new release, one that
/// `stet apply` would accept:
///
/// - it verifies and is not the release in force (or none is): plan against it, and say it is
///   not accepted yet;
/// - it is the release in force: plan against that;
/// - it is refused (an unsigned edit, a rollback by `git reset`, an expired release) or its
///   manifests do not parse, while a release is in force: plan against the release in force,
///   and say why the other was not taken. Without a release in force, the refusal stands.
public struct PlanningRelease: Sendable {
    public enum Basis: Sendable, Equatable {
        /// The release in force on this host.
        case inForce
        /// A verified release not yet accepted: what `stet apply` would accept.
        case candidate(inForce: ReleaseRef?)
    }

    public let release: ReleaseRef
    public let desired: DesiredState
    public let basis: Basis
    /// Why the gate's release was not planned against, when it was not.
    public let notTaken: String?

    /// Chooses, verifying read-only: the gate's release, and the copy of the release in force
    /// under the pinned policy (or the repository's, when nothing is pinned). Throws the gate's
    /// refusal or `ManifestError` when nothing is in force, a refusal of the copy in force
    /// (`VerificationError`), and what the host could not read.
    public static func choose(_ gate: ReleaseGate, now: Date) throws -> PlanningRelease {
        let releases = ReleaseStore(store: gate.store)
        var inForce: ReleaseStore.InForce?
        var reference: ReleaseRef?
        do {
            inForce = try releases.inForce(trustFile: gate.trustFile, now: now)
            if inForce != nil { reference = releases.reference() }
        } catch is ReleaseStore.NotStored {
            // Accepted by an earlier Stet, which kept only its digest: the gate's release is
            // planned against (as then) when it is that release; applying it keeps its copy.
            reference = releases.reference()
        }
        do {
            let passed = try gate.open(accept: false, now: now)
            if let reference, passed.release.release.isSameRelease(as: reference) {
                return PlanningRelease(release: reference, desired: inForce?.desired ?? passed.desired, basis: .inForce, notTaken: nil)
            }
            return PlanningRelease(
                release: passed.release.release, desired: passed.desired, basis: .candidate(inForce: reference), notTaken: nil)
        } catch let refused as ReleaseGate.Refused {
            guard let inForce, let reference else { throw refused }
            let why = switch refused.error.code {
            case .fileModified, .fileUnlisted, .fileMissing: "holds changes that are not signed"
            case .rollback: "holds an older release than the one in force"
            default: "was refused"
            }
            return PlanningRelease(
                release: reference, desired: inForce.desired, basis: .inForce,
                notTaken: "the release in \(gate.manifests) \(why) (\(refused.error.code.rawValue): \(refused.error.message))")
        } catch let invalid as ManifestError {
            guard let inForce, let reference else { throw invalid }
            return PlanningRelease(
                release: reference, desired: inForce.desired, basis: .inForce,
                notTaken: "the signed release in \(gate.manifests) has manifests that do not parse (\(invalid.lines.first ?? ""))")
        }
    }
}
