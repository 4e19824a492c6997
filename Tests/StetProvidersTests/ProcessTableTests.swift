import Foundation
@testable import StetProviders
import StetTesting
import Testing

/// `/proc/PID/stat` as the loop reads it, on the way from a replica's exit to its replacement:
/// parsed as bytes, so every odd command name and every damaged line must still give the right
/// fields or none.
@Suite struct ProcessTableTests {
    func parse(_ text: String) -> ProcessTable.Entry? {
        Array(text.utf8).withUnsafeBufferPointer { ProcessTable.parse($0) }
    }

    /// A line with the fields up to 22 (`starttime`) after the command name.
    func line(comm: String, state: String = "S", start: String = "123456") -> String {
        "4242 (\(comm)) \(state) 1 4242 4242 0 -1 4194560 155 0 0 0 1 0 0 0 20 0 1 0 \(start) 4489216 301 18446744073709551615\n"
    }

    @Test func theStateAndStartTimeAreReadAfterTheLastParenthesis() {
        #expect(parse(line(comm: "sleep")) == ProcessTable.Entry(state: "S", startTime: 123_456))
        #expect(parse(line(comm: "a) Z 1 2 (b", state: "R", start: "99")) == ProcessTable.Entry(state: "R", startTime: 99))
        #expect(parse(line(comm: "with  spaces ", state: "Z")) == ProcessTable.Entry(state: "Z", startTime: 123_456))
        #expect(parse(line(comm: "")) == ProcessTable.Entry(state: "S", startTime: 123_456))
    }

    /// A zombie first thread whose other threads still run is a process that runs, as its pidfd
    /// says; a zombie alone has ended.
    @Test func aZombieFirstThreadWithThreadsLeftStillRuns() {
        func entry(state: String, threads: String) -> ProcessTable.Entry? {
            parse(line(comm: "srv", state: state).replacingOccurrences(of: " 20 0 1 0 123456 ", with: " 20 0 \(threads) 0 123456 "))
        }
        #expect(entry(state: "Z", threads: "3")?.threads == 3)
        #expect(entry(state: "Z", threads: "3")?.runs == true)
        #expect(entry(state: "Z", threads: "1")?.runs == false)
        #expect(entry(state: "X", threads: "2")?.runs == false)
        #expect(entry(state: "S", threads: "1")?.runs == true)
        #expect(entry(state: "Z", threads: "x") == nil)
    }

    /// No record can make Stet signal pid 1's group (`kill(-1)`: every process) or its own
    /// (`kill(0)`); a replica that leads its own session is signalled with its group.
    @Test func onlyAReplicaAboveOneIsSignalledWithItsGroup() throws {
        #expect(ProcessTable.signalReplica(1, 0).isEmpty)
        #expect(ProcessTable.signalReplica(0, 0).isEmpty)
        #expect(ProcessTable.signalReplica(-1, 0).isEmpty)
        var pid: pid_t = 0
        let folder = TemporaryDirectory("stet-signal-replica")
        let rc = Spawn.start(["/bin/sleep", "600"], environment: [:], workingDirectory: folder.path, logPath: folder.file("log"), identity: nil, pid: &pid)
        try #require(rc == 0)
        #expect(ProcessTable.signalReplica(pid, 0) == [-pid, pid])
        #expect(ProcessTable.signalReplica(pid, SIGKILL) == [-pid, pid])
        var status: Int32 = 0
        #expect(waitpid(pid, &status, 0) == pid)
        #expect(status & 0x7F == SIGKILL)
    }

    @Test func damagedLinesGiveNothing() {
        #expect(parse("") == nil)
        #expect(parse("4242 sleep S 1 2 3") == nil)
        #expect(parse("4242 (sleep) S 1 2 3") == nil)
        #expect(parse(line(comm: "sleep", start: "12x")) == nil)
        #expect(parse(line(comm: "sleep", start: "99999999999999999999999")) == nil)
        #expect(parse(line(comm: "sleep", state: "SS")) == nil)
        #expect(parse(line(comm: "sleep", state: "é")) == nil)
        let full = line(comm: "sleep")
        for cut in 0..<full.utf8.count where cut < full.utf8.count - 40 {
            // Every cut before the start time's end: nothing, or the right start time.
            let entry = parse(String(decoding: Array(full.utf8).prefix(cut), as: UTF8.self))
            #expect(entry == nil || entry == ProcessTable.Entry(state: "S", startTime: 123_456))
        }
    }

    /// The live process agrees with what Foundation reads of the same file.
    @Test func thisProcessReadsAsItsStatFileSays() throws {
        let entry = try #require(ProcessTable.entry(getpid()))
        let text = try String(contentsOfFile: "/proc/self/stat", encoding: .utf8)
        let fields = text[text.index(after: text.lastIndex(of: ")")!)...].split(separator: " ")
        #expect(entry.startTime == UInt64(fields[19]))
        #expect(entry.threads == UInt64(fields[17]) && entry.threads >= 1)
        #expect(ProcessTable.isAlive(getpid(), startTime: entry.startTime))
        #expect(!ProcessTable.isAlive(getpid(), startTime: entry.startTime + 1))
        #expect(ProcessTable.entry(0) == nil && ProcessTable.entry(-1) == nil && ProcessTable.entry(Int32.max) == nil)
    }

    /// A record dated after now (the wall clock was stepped back since the start) counts from
    /// the start on the boot clock; any other record keeps its date.
    @Test func aStartDatedAfterNowIsTakenFromTheBootClock() throws {
        let entry = try #require(ProcessTable.entry(getpid()))
        let now = Date()
        let age = try #require(ProcessTable.age(startTime: entry.startTime))
        #expect(age >= 0 && age < 24 * 3600)
        let stepped = ProcessTable.startDate(startTime: entry.startTime, recorded: now.addingTimeInterval(3600), now: now)
        #expect(stepped <= now && stepped >= now.addingTimeInterval(-age - 1))
        let recorded = now.addingTimeInterval(-5)
        #expect(ProcessTable.startDate(startTime: entry.startTime, recorded: recorded, now: now) == recorded)
        #expect(ProcessTable.age(startTime: 0) == nil && ProcessTable.age(startTime: .max) == nil)
    }
}
