import ArgumentParser
import Foundation
import StetAudit
import StetCore
import StetCrypto
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
            Refuses a target that is not empty unless --force. Recorded in the audit log (intent \
            and result) under the operator key.

            EXIT STATUS
              0   restored
              1   error (a non-empty target, restic failed: wrong password, missing repository, a lock)
              10  the release or the audit log was refused
            """
    )

    @Argument(help: "The backup policy's name.")
    var policy: String

    @Option(help: ArgumentHelp("Snapshot id, or latest.", valueName: "id"))
    var snapshot = "latest"

    @Option(help: ArgumentHelp("Directory to restore into (the snapshot's absolute paths are recreated inside it).", valueName: "dir"))
    var target: String

    @Option(name: .customLong("path"), help: ArgumentHelp("Restore only this path (repeatable).", valueName: "path"))
    var paths: [String] = []

    @Flag(help: "Restore into a directory that is not empty.")
    var force = false

    @Option(help: ArgumentHelp("Manifest directory.", valueName: "dir"))
    var manifests = "manifests"

    @OptionGroup var global: GlobalOptions

    @OptionGroup var key: KeyOption

    func run() async throws {
        let privateKey = try PrivateKey(contentsOfFile: try key.path())
        let gate = ReleaseGate(manifests: manifests, trustFile: global.trust, store: global.store)
        let (session, passed) = try OperatorSession.verified(
            gate: gate, global: global, key: privateKey, action: "restore", directory: manifests)
        defer { try? session.close() }
        guard let backup = passed.desired.backupPolicies[policy] else {
            throw CommandFailure(status: ExitStatus.error, message: "no backup policy \(policy) in the release")
        }
        let contents = (try? FileManager.default.contentsOfDirectory(atPath: target)) ?? []
        if !contents.isEmpty && !force {
            try session.refused(action: "restore", reason: "restore of \(policy) into \(target) refused", error: "the target is not empty")
            throw CommandFailure(status: ExitStatus.error, message: "\(target) is not empty: pass --force to restore into it anyway")
        }
        let resource = ResourceID(.backupPolicy, policy).description
        let release = AuditContext.acceptedRelease(global.store)
        try session.log.append(AuditRecord(
            kind: .intent, release: release, resource: resource, action: "restore",
            reason: "restore snapshot \(snapshot) into \(target)" + (paths.isEmpty ? "" : " (only \(paths.joined(separator: ", ")))")))
        let out = Terminal.standardOutput
        out.line("restoring \(snapshot) of \(resource) into \(target) …")
        let started = Date()
        let provider = BackupProvider(store: global.store)
        do {
            try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
            let detail = try provider.restore(backup, snapshot: snapshot, target: target, include: paths)
            try session.log.append(AuditRecord(
                kind: .result, release: release, resource: resource, action: "restore", reason: detail, outcome: .ok,
                durationMs: Int(saturating: Date().timeIntervalSince(started) * 1000)))
            out.line(out.green("restored") + ": \(detail)")
        } catch {
            try session.log.append(AuditRecord(
                kind: .result, release: release, resource: resource, action: "restore", outcome: .failed, error: "\(error)",
                durationMs: Int(saturating: Date().timeIntervalSince(started) * 1000)))
            throw CommandFailure(status: ExitStatus.error, message: "restore failed: \(error)")
        }
    }
}
