import Foundation
import StetTesting
import Testing

/// `stet backups` lists what restic holds with what Stet knows of it; `stet restore` ends with
/// what it restored.
extension BackupTests {
    /// Files and bytes of the data the policy backs up.
    func dataTotals() throws -> (files: Int, bytes: Int) {
        var files = 0
        var bytes = 0
        let data = repo.root.file("data")
        for case let name as String in FileManager.default.enumerator(atPath: data)! {
            let attributes = try FileManager.default.attributesOfItem(atPath: data + "/" + name)
            guard attributes[.type] as? FileAttributeType == .typeRegular else { continue }
            files += 1
            bytes += (attributes[.size] as? Int) ?? 0
        }
        return (files, bytes)
    }

    struct Listing: Decodable {
        struct Policy: Decodable {
            struct Snapshot: Decodable {
                struct Test: Decodable {
                    let at: String
                    let ok: Bool
                }
                let id: String
                let shortId: String
                let time: String
                let tags: [String]
                let paths: [String]
                let files: Int?
                let bytes: Int?
                let restoreTest: Test?
            }
            let policy: String
            let snapshots: [Snapshot]
            let error: String?
        }
        let policies: [Policy]
    }

    @Test func backupsListsSnapshotsNewestFirstWithTheirRestoreTests() throws {
        try policy(restoreTest: "7d")
        let apply = try stet("apply", "--auto-approve", environment: ci)
        #expect(apply.status == 0, "\(apply.combined)")
        // A newer snapshot made by restic directly, outside Stet: listed, its size not known to Stet.
        let outside = try restic("backup", "--tag", "stet:files", repo.root.file("data"))
        #expect(outside.status == 0, "\(outside.combined)")
        let ids = try snapshotIDs()
        #expect(ids.count == 2)

        let json = try stet("backups", "--json")
        #expect(json.status == 0, "\(json.combined)")
        let listing = try JSONDecoder().decode(Listing.self, from: Data(json.stdout.utf8))
        let files = try #require(listing.policies.first { $0.policy == "files" })
        #expect(files.error == nil)
        #expect(files.snapshots.count == 2)
        #expect(Set(files.snapshots.map(\.id)) == Set(ids))
        // Newest first: restic's own snapshot, then Stet's, which was restore-tested.
        let (newest, oldest) = (files.snapshots[0], files.snapshots[1])
        #expect(newest.time >= oldest.time)
        #expect(newest.restoreTest == nil && newest.files == nil && newest.bytes == nil)
        let totals = try dataTotals()
        #expect(oldest.files == totals.files && oldest.bytes == totals.bytes)
        #expect(oldest.restoreTest?.ok == true)
        #expect(oldest.tags == ["stet:files"] && oldest.shortId == String(oldest.id.prefix(8)))
        #expect(oldest.paths.count == 1 && oldest.paths[0].hasSuffix("/data"))

        let text = try stet("backups")
        #expect(text.status == 0, "\(text.combined)")
        let lines = text.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first?.contains("BackupPolicy/files") == true && lines.first?.contains("2 snapshots") == true, "\(text.combined)")
        let newestLine = try #require(lines.firstIndex { $0.contains(newest.shortId) })
        let oldestLine = try #require(lines.firstIndex { $0.contains(oldest.shortId) })
        #expect(newestLine < oldestLine)
        #expect(lines[newestLine].contains("not restore-tested") && lines[newestLine].contains("size unknown"))
        #expect(lines[oldestLine].contains("restore-tested 20") && lines[oldestLine].contains("\(totals.files) files"), "\(text.stdout)")

        // One policy by name; a name the release does not have is an error naming it.
        #expect(try stet("backups", "files").status == 0)
        let missing = try stet("backups", "nope")
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("no backup policy nope in the release in force"), "\(missing.combined)")
        #expect(missing.stdout.isEmpty)
    }

    @Test func restoreEndsWithASummaryOfFilesBytesAndVerification() throws {
        try policy()
        #expect(try stet("apply", "--auto-approve", environment: ci).status == 0)
        let restored = try stet("restore", "files", "--target", "back", environment: ci)
        #expect(restored.status == 0, "\(restored.combined)")
        let totals = try dataTotals()
        let last = try #require(restored.stdout.split(separator: "\n").last.map(String.init))
        #expect(last.hasPrefix("restored: \(totals.files) files, "), "\(restored.combined)")
        #expect(last.contains("(\(totals.bytes) bytes)"), "\(restored.combined)")
        #expect(last.contains("verified: restic read back \(totals.files) files"), "\(restored.combined)")
    }
}
