import Foundation
import StetState
import StetTesting
import Testing

/// The folders that hold a state directory are checked once per process when they pass, and on
/// every use while they do not: a refusal is never remembered as a pass.
@Suite struct StateDirectoryHolderTests {
    @Test func aStateDirectoryInAFolderOthersCanWriteIsRefusedEveryTime() throws {
        let folder = TemporaryDirectory("stet-holders")
        let shared = folder.path + "/shared"
        try FileManager.default.createDirectory(atPath: shared, withIntermediateDirectories: true)
        chmod(shared, 0o777)
        let store = FileStateStore(root: shared + "/state")
        for attempt in 1...3 {
            #expect(throws: StateError.self, "attempt \(attempt)") { try store.write("status/x.json", Data("{}".utf8)) }
            #expect(throws: StateError.self, "attempt \(attempt)") { _ = try store.read("status/x.json") }
        }
        // Once the folder is mended, the same store works, and keeps working.
        chmod(shared, 0o755)
        try store.write("status/x.json", Data("{}".utf8))
        #expect(try store.read("status/x.json") == Data("{}".utf8))
    }

    /// A key's check as bytes refuses what the check by components did.
    @Test(arguments: ["", "/a", "a/", "a//b", ".", "..", "a/./b", "a/../b", "../x", String(repeating: "x", count: 256)])
    func malformedKeysAreRefused(key: String) {
        #expect(StateKey.problem(key) != nil, "\(key)")
    }

    @Test(arguments: ["a", "a/b.json", "...", "a/.hidden", "a..b/c", String(repeating: "x", count: 255)])
    func wellFormedKeysPass(key: String) {
        #expect(StateKey.problem(key) == nil, "\(key)")
    }
}
