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

    /// A child left in the background holds standard output open: the command's end ends the
    /// run all the same, and the child with it.
    @Test(.timeLimit(.minutes(1))) func whatTheCommandLeftBehindDiesWithIt() throws {
        let pidFile = scratch.file("background")
        let output = try Subprocess.run("/bin/sh", ["-c", "sleep 600 & echo $! > '\(pidFile)'; echo done"], timeout: 50)
        #expect(String(decoding: output.stdout, as: UTF8.self) == "done\n")
        #expect(try Self.isGone(Self.pid(in: pidFile)), "the background child outlived the command")
    }

    /// `setsid` takes a child out of the command's process group; the reaper, a subreaper, still
    /// finds it once its parent is gone and kills it.
    @Test(.timeLimit(.minutes(1))) func childrenThatLeaveTheGroupDieWithTheCommand() throws {
        let pidFile = scratch.file("escaped")
        let script = "setsid sh -c 'echo $$ > \"$1\"; exec sleep 600' sh \"$1\" & while [ ! -s \"$1\" ]; do sleep 0.01; done; echo started"
        let output = try Subprocess.run("/bin/sh", ["-c", script, "sh", pidFile], timeout: 50)
        #expect(String(decoding: output.stdout, as: UTF8.self) == "started\n")
        #expect(try Self.isGone(Self.pid(in: pidFile)), "the child in its own session outlived the command")
        // And at a deadline.
        let late = scratch.file("escaped-late")
        #expect(throws: Subprocess.Stopped.self) {
            try Subprocess.run("/bin/sh", ["-c", script + "; exec sleep 600", "sh", late], timeout: 1)
        }
        #expect(try Self.isGone(Self.pid(in: late)), "the child in its own session outlived the deadline")
    }

    /// Stet ignores SIGTERM and SIGPIPE and may block signals in the calling thread; a command
    /// starts with every signal at its default and none blocked.
    @Test func theCommandStartsWithDefaultSignalsNoneBlocked() throws {
        let ignoredTerm = signal(SIGTERM, SIG_IGN)
        let ignoredPipe = signal(SIGPIPE, SIG_IGN)
        var blocked = sigset_t(), previous = sigset_t()
        sigemptyset(&blocked)
        sigaddset(&blocked, SIGTERM)
        pthread_sigmask(SIG_BLOCK, &blocked, &previous)
        defer {
            pthread_sigmask(SIG_SETMASK, &previous, nil)
            signal(SIGTERM, ignoredTerm)
            signal(SIGPIPE, ignoredPipe)
        }
        for (name, number) in [("TERM", SIGTERM), ("PIPE", SIGPIPE)] {
            let ending = try Subprocess.execute(
                .init("/bin/sh", ["-c", "kill -\(name) $$; exit 0"], timeout: 30), standardOutput: { _ in }, standardError: { _ in })
            #expect(ending.signal == number, "SIG\(name) did not end the command (exit \(ending.status))")
            #expect(ending.status == 128 + number)
        }
    }

    /// Bytes on standard input are written as the command reads them; what it never reads is
    /// counted, whether it ends first (`true`) or takes only part; a command that stops reading
    /// and hangs is stopped at the deadline.
    @Test(.timeLimit(.minutes(1))) func inputIsWrittenWithinTheDeadlineAndWhatIsUnreadIsCounted() throws {
        let big = Data(repeating: UInt8(ascii: "x"), count: 80_000)
        func run(_ script: String, _ input: Data, timeout: Double = 30) throws -> Subprocess.Output {
            try Subprocess.run(.init("/bin/sh", ["-c", script], input: .bytes(input), timeout: timeout))
        }
        #expect(try run("true", big).unreadInput == big.count)
        #expect(try run("true", Data("{}".utf8)).unreadInput == 2)
        #expect(try run("head -c 1000 > /dev/null", big).unreadInput == big.count - 1000)
        let cat = try run("cat", big)
        #expect(cat.unreadInput == 0)
        #expect(cat.stdout == big)
        #expect(throws: Subprocess.Stopped.self) { try run("exec sleep 600", Data(count: 1 << 20), timeout: 0.5) }
    }

    @Test func theEnvironmentIsTheCallersAndAMissingProgramIsAnError() throws {
        let output = try Subprocess.run(.init("env", [], environment: ["ONLY": "this"], timeout: 30))
        #expect(String(decoding: output.stdout, as: UTF8.self) == "ONLY=this\n")
        #expect(!Subprocess.plainEnvironment(["A": "1"]).keys.contains { $0.hasPrefix("STET_") })
        let error = #expect(throws: Subprocess.CannotStart.self) {
            try Subprocess.run(.init("no-such-program-for-stet", [], timeout: 30))
        }
        #expect(error?.description == "cannot start no-such-program-for-stet: No such file or directory")
    }

    static func pid(in file: String) throws -> Int32 {
        try #require(Int32(String(decoding: FileManager.default.contents(atPath: file) ?? Data(), as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)))
    }

    /// Exited (a zombie waiting for its new parent counts as gone).
    static func isGone(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return true }
        return stat[stat.index(close, offsetBy: 2)] == "Z"
    }
}
