import CSys
import Foundation
@testable import StetEngine
@testable import StetProviders
import Testing

/// The loop's watchers answer whether a replica still runs from its pidfd, which refers to that
/// very process, instead of reading `/proc` for every replica on every pass.
@Suite struct ReplicaWatchersTests {
    static func record(_ pid: Int32, startTime: UInt64) -> ReplicaProvider.Record {
        ReplicaProvider.Record(
            service: "web", index: 0, pid: pid, startTime: startTime, specHash: "sha256:" + String(repeating: "0", count: 64), port: nil,
            startedAt: Date(), restarts: 0, lastExit: nil, exitedAt: nil, protect: false, instance: nil, stopSignal: nil, stopTimeout: nil,
            healthFailures: 0, lastCheck: nil)
    }

    /// Where the kernel or a sandbox gives no pidfds, the watchers look at `/proc`, as `isAlive` does.
    static let pidfds: Bool = {
        let fd = stet_pidfd_open(getpid())
        if fd >= 0 { close(fd) }
        return fd >= 0
    }()

    @Test(.enabled(if: pidfds, "pidfd_open is not available here"))
    func aWatchedReplicaRunsUntilItsPidfdSaysItEnded() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sleep")
        process.arguments = ["600"]
        try process.run()
        defer {
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
        }
        let pid = process.processIdentifier
        let startTime = try #require(ProcessTable.entry(pid)?.startTime)
        let record = Self.record(pid, startTime: startTime)
        let watchers = ReplicaWatchers()
        #expect(!watchers.runs(record), "not watched yet: ask /proc")
        let first = watchers.sync(["web": [0: record]])
        #expect(first.watched.map(\.pid) == [pid])
        #expect(watchers.runs(record))
        #expect(watchers.isAlive(record))
        // Another process under the same pid is not the watched one.
        #expect(!watchers.runs(Self.record(pid, startTime: startTime + 1)))

        kill(pid, SIGKILL)
        let deadline = Date().addingTimeInterval(10)
        while watchers.runs(record), Date() < deadline { usleep(1_000) }
        #expect(!watchers.runs(record))
        #expect(!watchers.isAlive(record))
        let after = watchers.sync(["web": [0: record]])
        #expect(after.unrecorded == ["web"])
        #expect(after.watched.isEmpty && after.stopped.map(\.index) == [0])
    }
}
