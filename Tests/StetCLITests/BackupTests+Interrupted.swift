import Foundation
import StetTesting
import Testing

/// `restic init` cut short: Stet killed while it runs leaves no repository at the policy's path,
/// the next apply makes a whole one, and a path that holds what an older, interrupted init left
/// is refused with what to do, never initialised over.
extension BackupTests {
    @Test func anApplyKilledDuringInitLeavesNoRepositoryAndTheNextApplyMakesOne() throws {
        try policy()
        let parent = repo.root.file("backups")
        func staging() -> [String] {
            ((try? FileManager.default.contentsOfDirectory(atPath: parent)) ?? []).filter { $0.hasPrefix(".files.stet-init-") }
        }
        let apply = try BackgroundProcess(Binary.stet, ["apply", "--auto-approve"], in: repo.root.path, environment: ci)
        // restic spends seconds deriving the key: the folder it fills shows long before the rename.
        #expect(eventually(timeout: 30, interval: 0.01) { !staging().isEmpty }, "\(apply.output)")
        _ = apply.stop(SIGKILL, timeout: 5)
        #expect(!FileManager.default.fileExists(atPath: repo.root.file("backups/files")), "a partial repository at the policy's path")

        let again = try stet("apply", "--auto-approve", environment: ci)
        #expect(again.status == 0, "\(again.combined)")
        #expect(staging().isEmpty, "left behind: \(staging())")
        #expect(try snapshotIDs().count == 1)
        let audit = try stet("audit", "verify")
        #expect(audit.status == 0, "\(audit.combined)")
    }

    @Test func whatAnOlderInterruptedInitLeftIsRefusedWithWhatToDo() throws {
        try policy()
        // restic's folders and a key without a config: an init killed between the two.
        for folder in ["data", "index", "locks", "snapshots"] { _ = try repo.root.write("backups/files/\(folder)/.keep", "") }
        _ = try repo.root.write("backups/files/keys/0f3c", "{\"created\":\"2026-11-30T00:00:00Z\"}")
        let apply = try stet("apply", "--auto-approve", environment: ci)
        #expect(apply.status == 1, "\(apply.combined)")
        #expect(apply.combined.contains("is not a restic repository") && apply.combined.contains("remove it and apply again"), "\(apply.combined)")
        #expect(FileManager.default.fileExists(atPath: repo.root.file("backups/files/keys/0f3c")), "Stet changed what it refused")
    }
}
