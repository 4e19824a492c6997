import ArgumentParser
import Foundation
import StetCore
import StetManifest
import StetProviders
import StetState

struct BackupsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backups",
        abstract: "List each backup policy's snapshots, newest first.",
        discussion: """
            For each backup policy of the release in force (or only POLICY): its snapshots as \
            restic lists them (one `restic snapshots` per policy), newest first, with id, time, \
            tags and paths; the files and bytes Stet backed up when Stet made the snapshot; and \
            the snapshot's last restore test (when, passed or failed). Read-only, needs no key.

            EXIT STATUS
              0   listed
              1   error (no such policy in the release in force, a repository that cannot be
                  listed: wrong password, missing repository, not answering)
              10  the copy of the release in force fails verification
            """
    )

    @Argument(help: ArgumentHelp("Only this backup policy.", valueName: "policy"))
    var policy: String?

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        if let policy, !ResourceID.isValidName(policy) {
            throw ValidationError("POLICY \(policy): expected a backup policy's name (a DNS label such as files or db-main)")
        }
    }

    func run() async throws {
        guard let inForce = try ReleaseStore(store: global.store).inForce(trustFile: global.trust, now: Date()) else {
            throw CommandFailure(
                status: ExitStatus.error,
                message: "no release is in force in \(global.store.root) yet: `stet apply` (or `stet verify --accept`) accepts one")
        }
        let lists: [BackupProvider.PolicySnapshots]
        do {
            lists = try BackupProvider(store: global.store).snapshotLists(inForce.desired, only: policy)
        } catch let unknown as BackupProvider.UnknownPolicy {
            throw CommandFailure(status: ExitStatus.error, message: "\(unknown) (release version \(inForce.accepted.version))")
        }
        let out = Terminal.standardOutput
        if global.json {
            out.json(["policies": lists])
        } else {
            if lists.isEmpty { out.line("Release version \(inForce.accepted.version), in force, has no backup policies.") }
            for list in lists { show(list, on: out) }
        }
        let failed = lists.filter { $0.error != nil }
        if !failed.isEmpty {
            throw CommandFailure(
                status: ExitStatus.error,
                message: "cannot list the snapshots of " + failed.map { "\($0.policy) (\($0.error ?? ""))" }.joined(separator: ", "))
        }
    }

    private func show(_ list: BackupProvider.PolicySnapshots, on out: Terminal) {
        let count = list.snapshots.count
        out.line(out.bold("BackupPolicy/\(list.policy)") + "  \(list.repository)  "
            + (list.error == nil ? "\(count) snapshot\(count == 1 ? "" : "s")" : out.red("cannot be listed")))
        if let error = list.error { out.line("  \(error)") }
        for snapshot in list.snapshots {
            let size = snapshot.bytes.map { ByteCount.text($0) } ?? "size unknown"
            let files = snapshot.files.map { "\($0) files" } ?? "files unknown"
            let test: String
            if let restoreTest = snapshot.restoreTest {
                test = (restoreTest.ok ? out.green("restore-tested") : out.red("restore test failed")) + " \(RFC3339.format(restoreTest.at))"
            } else {
                test = out.dim("not restore-tested")
            }
            out.line("  \(snapshot.shortId)  \(RFC3339.format(snapshot.time))  \(files)  \(size)  tags \(snapshot.tags.joined(separator: ","))  \(test)")
        }
    }
}
