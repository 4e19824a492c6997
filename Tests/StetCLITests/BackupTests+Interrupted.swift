import Foundation
import StetTesting
import Testing

/// `restic init` cut short: Stet killed while it runs leaves a whole repository at the policy's
/// path or none, and the next apply makes one and removes what the cut left beside it. A folder
/// with restic's keys but no config (an init cut short in place) is made again; a config restic
/// cannot read is refused with what to do, never initialised over.
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
        // restic needs seconds more to finish: the path holds nothing (or, on a machine slow
        // enough that the kill came after the rename, a repository that opens).
        if FileManager.default.fileExists(atPath: repo.root.file("backups/files")) {
            let opened = try restic("cat", "config")
            #expect(opened.status == 0, "a partial repository at the policy's path: \(opened.combined)")
        }

        let again = try stet("apply", "--auto-approve", environment: ci)
        #expect(again.status == 0, "\(again.combined)")
        #expect(staging().isEmpty, "left behind: \(staging())")
        #expect(try snapshotIDs().count == 1)
        let audit = try stet("audit", "verify")
        #expect(audit.status == 0, "\(audit.combined)")
    }

    @Test func anInitCutShortInPlaceIsMadeAgainAndAnUnreadableConfigIsLeftAloneWithWhatToDo() throws {
        try policy()
        // restic's folders and a key without a config: an init killed in place before its end.
        for folder in ["data", "index", "locks", "snapshots"] { _ = try repo.root.write("backups/files/\(folder)/.keep", "") }
        _ = try repo.root.write("backups/files/keys/0f3c", "{\"created\":\"2026-11-30T00:00:00Z\"}")
        let apply = try stet("apply", "--auto-approve", environment: ci)
        #expect(apply.status == 0, "\(apply.combined)")
        #expect(try snapshotIDs().count == 1)

        // A config restic cannot read: refused, and left as it was.
        let config = repo.root.file("backups/files/config")
        try FileManager.default.removeItem(atPath: config)
        _ = try repo.root.write("backups/files/config", "not a restic config")
        try FileManager.default.removeItem(atPath: repo.stateDir + "/backup")
        let refused = try stet("apply", "--auto-approve", environment: ci)
        #expect(refused.combined.contains("never initialises over an existing repository")
            && refused.combined.contains("backups/files snapshots`"), "\(refused.combined)")
        #expect(try String(contentsOfFile: config, encoding: .utf8) == "not a restic config", "Stet changed what it refused")
    }
}
