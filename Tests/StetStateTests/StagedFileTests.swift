import Foundation
import StetState
import StetTesting
import Testing

/// `FileStateStore.stage` over a file moves the old file aside instead of freeing it on the way
/// to an action; the next write, sync or removal of the key frees it.
@Suite struct StagedFileTests {
    /// The names in `folder` of the state directory, hidden and temporary ones too.
    func entries(_ store: FileStateStore, _ folder: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: store.path(folder)).sorted()
    }

    @Test func aStagedValueReplacesTheOldWhichWaitsAsideUntilTheNextWrite() throws {
        let folder = TemporaryDirectory("stet-stage")
        let store = FileStateStore(root: folder.file("state"))
        try store.write("replicas/web/0.json", Data("old".utf8))
        try store.stage("replicas/web/0.json", Data("new".utf8))
        #expect(try store.read("replicas/web/0.json") == Data("new".utf8))
        // Aside under a temporary name, with the old content, and no listing shows it.
        let aside = try entries(store, "replicas/web").filter { $0 != "0.json" }
        #expect(aside.count == 1)
        #expect(aside.allSatisfy { $0.hasPrefix("0.json.tmp.") })
        #expect(try aside.map { try store.read("replicas/web/\($0)") } == [Data("old".utf8)])
        #expect(try store.list("replicas/web") == ["0.json"])
        try store.write("replicas/web/0.json", Data("saved".utf8))
        #expect(try entries(store, "replicas/web") == ["0.json"])
        #expect(try store.read("replicas/web/0.json") == Data("saved".utf8))
    }

    @Test func aSyncOrARemovalFreesWhatAStageMovedAside() throws {
        let folder = TemporaryDirectory("stet-stage")
        let store = FileStateStore(root: folder.file("state"))
        try store.write("inflight/a.json", Data("1".utf8))
        try store.stage("inflight/a.json", Data("2".utf8))
        try store.sync("inflight/a.json")
        #expect(try entries(store, "inflight") == ["a.json"])
        try store.stage("inflight/a.json", Data("3".utf8))
        try store.remove("inflight/a.json")
        #expect(try entries(store, "inflight") == [])
    }

    @Test func aStageWithNothingToReplaceLeavesNothingAside() throws {
        let folder = TemporaryDirectory("stet-stage")
        let store = FileStateStore(root: folder.file("state"))
        try store.stage("inflight/b.json", Data("x".utf8))
        #expect(try entries(store, "inflight") == ["b.json"])
        #expect(try store.read("inflight/b.json") == Data("x".utf8))
    }

    @Test func aStageDoesNotFollowALinkPlantedInPlaceOfTheFile() throws {
        let folder = TemporaryDirectory("stet-stage")
        let store = FileStateStore(root: folder.file("state"))
        try store.write("replicas/web/0.json", Data("old".utf8))
        let target = folder.file("elsewhere")
        try Data("theirs".utf8).write(to: URL(fileURLWithPath: target))
        unlink(store.path("replicas/web/0.json"))
        symlink(target, store.path("replicas/web/0.json"))
        #expect(throws: (any Error).self) { try store.stage("replicas/web/0.json", Data("new".utf8)) }
        #expect(try Data(contentsOf: URL(fileURLWithPath: target)) == Data("theirs".utf8))
    }

    @Test func aFileLargerThanItsFirstBufferIsReadWhole() throws {
        let folder = TemporaryDirectory("stet-stage")
        let store = FileStateStore(root: folder.file("state"))
        let big = Data((0..<300_000).map { UInt8(truncatingIfNeeded: $0) })
        try store.write("big", big)
        #expect(try store.read("big") == big)
        try store.write("empty", Data())
        #expect(try store.read("empty") == Data())
    }

    @Test func aTemporaryNameSaysWhichProcessMadeIt() {
        #expect(AtomicFile.writer(ofTemporary: "0.json.tmp.1234.987654") == 1234)
        #expect(AtomicFile.writer(ofTemporary: "a.tmp.b.json.tmp.42.1") == 42)
        for name in ["0.json", "0.json.tmp.", "0.json.tmp.0.5", "0.json.tmp.12", "0.json.tmp.-3.5", "0.json.tmp.12345678901.5",
                     "0.json.tmp.99999999999999999999.1", ".tmp.7x.1"] {
            #expect(AtomicFile.writer(ofTemporary: name) == nil, "\(name)")
        }
    }

    @Test func leftoversOfEndedWritersAreRemovedAndOthersKept() throws {
        let folder = TemporaryDirectory("stet-stage")
        let store = FileStateStore(root: folder.file("state"))
        try store.write("replicas/web/0.json", Data("record".utf8))
        // A process that has ended: its pid is not alive once it is reaped.
        let ended = try StetTesting.run("/bin/sh", ["-c", "echo $$"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let names = ["0.json.tmp.\(ended).1", "0.json.tmp.\(getpid()).2", "0.json.tmp.1.3", "notes.txt"]
        for name in names { try Data("x".utf8).write(to: URL(fileURLWithPath: store.path("replicas/web/\(name)"))) }
        try store.removeLeftovers(in: "replicas/web")
        #expect(try entries(store, "replicas/web") == ["0.json", "0.json.tmp.1.3", "0.json.tmp.\(getpid()).2", "notes.txt"].sorted())
        try store.removeLeftovers(in: "no/such/folder")
    }
}
