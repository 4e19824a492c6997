import Foundation
import StetProviders
import StetTesting
import Testing

/// The one subprocess runner: a deadline and an output bound stop the whole process group.
@Suite struct SubprocessTests {
    let scratch = TemporaryDirectory("stet-subprocess")

    @Test(.timeLimit(.minutes(1))) func theDeadlineKillsTheWholeProcessGroup() throws {
        let pidFile = scratch.file("pid")
        // A grandchild holds standard output open: only killing the group ends the read.
        let error = #expect(throws: Subprocess.Stopped.self) {
            try Subprocess.run("/bin/sh", ["-c", "sleep 600 & echo $! > '\(pidFile)'; exec sleep 600"], timeout: 0.5)
        }
        #expect(error?.description == "did not finish within 0.5 s; stopped")
        let pid = try #require(Int32(String(decoding: FileManager.default.contents(atPath: pidFile) ?? Data(), as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)))
        #expect(eventually(timeout: 10) { Self.isGone(pid) })
    }

    @Test func tooMuchOutputStopsTheCommand() throws {
        let error = #expect(throws: Subprocess.Stopped.self) {
            try Subprocess.run("/usr/bin/yes", [], maximumOutput: 1 << 20)
        }
        #expect(error?.description == "wrote more than 1048576 bytes; stopped")
    }

    @Test func standardErrorKeepsItsFirstAndLastComplaint() throws {
        let output = try Subprocess.run(
            "/bin/sh", ["-c", "echo first >&2; yes xxxxxxx | head -c 200000 >&2; echo last >&2; exit 3"], timeout: 30)
        #expect(output.status == 3)
        #expect(output.stderr.hasPrefix("first\n"))
        #expect(output.stderr.hasSuffix("\nlast\n"))
        #expect(output.stderr.utf8.count < 2 * (32 << 10) + 10)
    }

    @Test func inputComesFromTheFileGiven() throws {
        let input = try scratch.write("in", "one\ntwo\n")
        let output = try Subprocess.run("/bin/cat", [], input: input, timeout: 30)
        #expect(output.status == 0)
        #expect(String(decoding: output.stdout, as: UTF8.self) == "one\ntwo\n")
    }

    /// Exited (a zombie waiting for its new parent counts as gone).
    static func isGone(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return true }
        return stat[stat.index(close, offsetBy: 2)] == "Z"
    }
}
