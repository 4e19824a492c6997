import ArgumentParser
import Foundation
import StetAudit
import StetCore
import StetCrypto
import StetEngine
import StetManifest
import StetProviders
import StetState

struct RestoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore",
        abstract: "Restore a backup policy's snapshot into a directory.",
        discussion: """
            Restores the newest snapshot of POLICY (or --snapshot ID) from its restic repository \
            into --target, checking restored content against the repository (restic --verify). \
            Only snapshots tagged for POLICY are restored: another policy's snapshot is refused. \
            restic writes into a fresh folder that Stet makes inside the target, and Stet moves \
            the result into place without following any symbolic link it finds in the target \
            (a link is replaced, never written through). Refuses a target that is a symbolic \
            link, and one that is not empty unless --force. Recorded in the audit log (intent \
            and result, or the refusal) under the operator key. The policy is the one of the \
            release in force (kept in the state directory). Ends with a summary: files and bytes \
            restored, and what restic verified.

            EXIT STATUS
              0   restored
              1   error (a non-empty target, a snapshot not of POLICY, restic failed: wrong
                  password, missing repository, a lock, a repository not answering)
              10  the release or the audit log was refused
            """
    )

    @Argument(help: "The backup policy's name.")
    var policy: String

    @Option(help: ArgumentHelp("Snapshot id (or a prefix of one) of POLICY, or latest.", valueName: "id"))
    var snapshot = "latest"

    @Option(help: ArgumentHelp("Directory to restore into (the snapshot's absolute paths are recreated inside it).", valueName: "dir"))
    var target: String

    @Option(name: .customLong("path"), help: ArgumentHelp("Restore only this path (repeatable).", valueName: "path"))
    var paths: [String] = []

    @Flag(help: "Restore into a directory that is not empty.")
    var force = false

    @OptionGroup var global: GlobalOptions

    @OptionGroup var key: KeyOption

    func validate() throws {
        guard BackupProvider.isSnapshotName(snapshot) else {
            throw ValidationError("--snapshot \(snapshot): expected latest or a snapshot id (hexadecimal)")
        }
    }

    func run() async throws {
        let privateKey = try PrivateKey(contentsOfFile: try key.path())
        let (session, inForce) = try OperatorSession.inForce(global: global, key: privateKey)
        defer { try? session.close() }
        guard let backup = inForce.desired.backupPolicies[policy] else {
            throw CommandFailure(
                status: ExitStatus.error, message: "no backup policy \(policy) in release version \(inForce.accepted.version), in force")
        }
        let provider = BackupProvider(store: global.store)
        let destination: RestoreTarget
        let chosen: ObservedBackup.Snapshot
        do {
            destination = try RestoreTarget(target, force: force)
            chosen = try provider.snapshot(backup, named: snapshot)
        } catch let refused as RestoreTarget.Refused {
            try session.refused(action: "restore", reason: "restore of \(policy) into \(target) refused", error: refused.reason)
            throw CommandFailure(status: ExitStatus.error, message: refused.description)
        } catch let refused as BackupProvider.SnapshotRefused {
            try session.refused(action: "restore", reason: "restore of \(policy) snapshot \(snapshot) refused", error: refused.description)
            throw CommandFailure(status: ExitStatus.error, message: refused.description)
        } catch {
            // Nothing was restored: an error (a repository not answering, a wrong password), not a refusal.
            throw CommandFailure(status: ExitStatus.error, message: "cannot restore: \(error)")
        }
        let resource = ResourceID(.backupPolicy, policy)
        let out = Terminal.standardOutput
        out.line("restoring snapshot \(chosen.id.prefix(8)) of \(resource) into \(target) …")
        // The same path as every action: intent, in-flight marker, result, the policy's status.
        let applier = Applier(provider: provider, audit: session.log, store: global.store, release: AuditContext.acceptedRelease(global.store))
        let action = Applier.Action(
            id: "\(resource):restore", resource: resource, action: "restore",
            reason: "restore snapshot \(chosen.id) into \(target)" + (paths.isEmpty ? "" : " (only \(paths.joined(separator: ", ")))"))
        let (outcome, _) = try await applier.run(action) {
            do {
                return .done(try provider.restore(backup, snapshot: chosen, into: destination, include: paths).description)
            } catch {
                return .failed("\(error)")
            }
        }
        guard outcome.ok else { throw CommandFailure(status: ExitStatus.error, message: "restore failed: \(outcome.error ?? "")") }
        out.line(out.green("restored") + ": \(outcome.detail)")
    }
}
