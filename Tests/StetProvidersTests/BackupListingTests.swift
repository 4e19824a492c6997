import Foundation
import StetCore
import StetProviders
import StetState
import StetTesting
import Testing

/// What restic lists is bounded and checked before `stet backups` uses it: a restic (or a
/// repository) that answers with too much, or with snapshots out of form, fails that policy's
/// list with an error naming what was wrong, and nothing out of form reaches the output.
@Suite struct BackupListingTests {
    let folder = TemporaryDirectory("stet-backup-listing")

    /// A policy whose restic is `script` (a shell script standing in for restic).
    func lists(_ script: String) throws -> [BackupProvider.PolicySnapshots] {
        try folder.write("secret.pw", "listing password 19a2\n", mode: 0o600)
        try folder.write("restic", "#!/bin/sh\n" + script + "\n", mode: 0o755)
        var backups = BackupProvider(store: FileStateStore(root: folder.file(".stet")), baseDirectory: folder.path)
        backups.restic = Restic(executable: folder.file("restic"))
        var desired = DesiredState()
        desired.backupPolicies["files"] = BackupPolicy(
            metadata: Metadata(name: "files"), paths: ["data"], resticRepository: "repo", passwordFile: "secret.pw",
            every: .seconds(3600), rpo: .seconds(7200), retention: .init(last: 3), checkEvery: nil, restoreTestEvery: nil)
        return try backups.snapshotLists(desired)
    }

    static let good = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

    @Test(arguments: [
        (#"[{"id":"../../etc/passwd","time":"2026-11-30T10:00:00Z","tags":["stet:files"]}]"#, "is not 64 hexadecimal digits"),
        (#"[{"id":"\#(good)","time":"yesterday","tags":["stet:files"]}]"#, "is not RFC 3339"),
        (#"{"id": 1}"#, "is not the JSON expected"),
    ])
    func aSnapshotOutOfFormFailsThePolicysList(listed: String, problem: String) throws {
        let result = try lists("printf '%s' '\(listed)'")
        #expect(result.count == 1)
        #expect(result[0].snapshots.isEmpty)
        #expect(result[0].error?.contains(problem) == true, "\(result[0].error ?? "")")
    }

    @Test func aListOverItsBoundIsStoppedNotRead() throws {
        let result = try lists("exec head -c \(BackupProvider.maximumListOutput + 1) /dev/zero")
        #expect(result[0].error?.contains("wrote more than \(BackupProvider.maximumListOutput) bytes") == true, "\(result[0].error ?? "")")
    }

    @Test func snapshotsInFormAreListedNewestFirst() throws {
        let older = String(repeating: "a", count: 64)
        let result = try lists(
            "printf '%s' '[{\"id\":\"\(older)\",\"time\":\"2026-11-29T10:00:00Z\",\"tags\":[\"stet:files\"]},"
                + "{\"id\":\"\(Self.good)\",\"time\":\"2026-11-30T10:00:00.5Z\",\"tags\":[\"stet:files\"],\"paths\":[\"/data\"]},"
                + "{\"id\":\"\(String(repeating: "b", count: 64))\",\"time\":\"2026-12-01T10:00:00Z\",\"tags\":[\"stet:other\"]}]'")
        #expect(result[0].error == nil)
        #expect(result[0].snapshots.map(\.id) == [Self.good, older])
        #expect(result[0].snapshots[0].paths == ["/data"] && result[0].snapshots[0].shortId == "01234567")
    }

    /// A record whose snapshot facts hold a number Stet never writes is refused as corrupt.
    @Test func aRecordWithFactsOutOfFormIsCorrupt() throws {
        try FileStateStore(root: folder.file(".stet")).write("backup/files.json", Data(
            #"{"name":"files","repository":"repo","known":true,"protect":false,"checkIndex":0,"snapshots":[{"id":"0123abcd","bytes":-1}]}"#.utf8))
        let result = try lists("printf '%s' '[]'")
        #expect(result[0].error?.contains("bytes -1 of snapshot 0123abcd is not from 0 to") == true, "\(result[0].error ?? "")")
    }

    @Test func aPolicyTheReleaseDoesNotHaveIsNamed() throws {
        let backups = BackupProvider(store: FileStateStore(root: folder.file(".stet")))
        #expect(throws: BackupProvider.UnknownPolicy.self) { try backups.snapshotLists(DesiredState(), only: "nope") }
    }
}
