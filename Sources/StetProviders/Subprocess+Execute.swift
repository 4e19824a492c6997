import CSys
public import Foundation

extension Subprocess {
    /// Seconds the reaper gets, after Stet asked it to stop, to kill and reap everything and
    /// report; past them it is killed itself.
    static let reaperGrace = 5.0
    /// Seconds to finish reading outputs once the command and its descendants are gone (only a
    /// process that was handed a descriptor some other way could hold them longer).
    static let drainGrace = 1.0

    /// Runs `command` to its end on the calling thread, handing each output to its closure as it
    /// arrives (with `mergeStandardError`, all of it to `standardOutput`). When
    /// `standardOutput` throws or the deadline passes, the command and everything it started
    /// are killed, and the call throws (that error, or `Stopped`).
    public static func execute(
        _ command: Command, standardOutput: (Data) throws -> Void, standardError: (Data) throws -> Void
    ) throws -> Ending {
        var job = try Job(command)
        defer { job.closeAll() }
        try job.start(command)
        return try job.follow(command, standardOutput: standardOutput, standardError: standardError)
    }
}

/// One run: Stet's ends of the pipes, the reaper, and what it reported.
private struct Job {
    /// Stet's ends: outputs read, input written, the reaper's report read.
    var output: Int32 = -1
    var error: Int32 = -1
    var input: Int32 = -1
    var report: Int32 = -1
    /// The command's ends, closed once the reaper has them; `inputReader` is kept to count
    /// what the command never read.
    var childInput: Int32 = -1
    var childOutput: Int32 = -1
    var childError: Int32 = -1
    var childReport: Int32 = -1
    var inputReader: Int32 = -1
    var bytes = Data()
    var written = 0
    var reaper: pid_t = 0
    var commandPID: Int32?
    var waitStatus: Int32?
    var reportBuffer = [UInt8]()
    var reportEnded = false

    init(_ command: Subprocess.Command) throws {
        do {
            (output, childOutput) = try Self.pipe()
            if !command.mergeStandardError { (error, childError) = try Self.pipe() }
            (report, childReport) = try Self.pipe()
            switch command.input {
            case .none:
                childInput = open("/dev/null", O_RDONLY | O_CLOEXEC)
                guard childInput >= 0 else { throw Subprocess.CannotStart(description: "cannot open /dev/null: \(Self.errorText())") }
            case .file(let path):
                childInput = open(path, O_RDONLY | O_CLOEXEC)
                guard childInput >= 0 else { throw Subprocess.CannotStart(description: "cannot open \(path) for reading: \(Self.errorText())") }
            case .bytes(let data):
                (childInput, input) = try Self.pipe()
                inputReader = childInput
                bytes = data
            }
        } catch {
            closeAll()
            throw error
        }
    }

    static func errorText(_ code: Int32 = errno) -> String { String(cString: strerror(code)) }

    /// A pipe as (read end, write end), close-on-exec, never on a standard descriptor.
    static func pipe() throws -> (Int32, Int32) {
        var fds: [Int32] = [-1, -1]
        guard stet_job_pipe(&fds) == 0 else { throw Subprocess.CannotStart(description: "cannot make a pipe: \(errorText())") }
        return (fds[0], fds[1])
    }

    mutating func start(_ command: Subprocess.Command) throws {
        let argv = ([command.executable] + command.arguments).map { strdup($0) } + [nil]
        let envp = command.environment.map { $0.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") } + [nil] }
        defer {
            argv.forEach { free($0) }
            envp?.forEach { free($0) }
        }
        let (stdinFD, stdoutFD, stderrFD, reportFD) = (childInput, childOutput, command.mergeStandardError ? childOutput : childError, childReport)
        var pid: pid_t = 0
        let rc = argv.withUnsafeBufferPointer { a in
            func start(_ e: UnsafePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
                stet_job_start(command.executable, a.baseAddress, e, command.directory, stdinFD, stdoutFD, stderrFD, reportFD, &pid)
            }
            guard let envp else { return start(nil) }
            return envp.withUnsafeBufferPointer { start($0.baseAddress) }
        }
        // The reaper holds the command's ends now (or nobody does); Stet keeps only the input's
        // read end, to count what was never read.
        for fd in [childOutput, childError, childReport] where fd >= 0 { close(fd) }
        (childOutput, childError, childReport) = (-1, -1, -1)
        if inputReader < 0, childInput >= 0 { close(childInput) }
        childInput = -1
        guard rc == 0 else { throw Subprocess.CannotStart(description: "cannot start \(command.executable): \(Self.errorText(rc))") }
        reaper = pid
        for fd in [output, error, input, report] where fd >= 0 { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
        if input >= 0, bytes.isEmpty {
            close(input)
            input = -1
        }
    }

    mutating func closeAll() {
        for fd in [output, error, input, report, childInput, childOutput, childError, childReport, inputReader] where fd >= 0 { close(fd) }
        (output, error, input, report, childInput, childOutput, childError, childReport, inputReader) = (-1, -1, -1, -1, -1, -1, -1, -1, -1)
    }

    static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    static func after(_ seconds: Double, from start: UInt64) -> UInt64 {
        start &+ UInt64(min(max(seconds.isNaN ? 0 : seconds, 0), 365 * 86_400) * 1e9)
    }

    /// Milliseconds from now until `moment` for poll(2), -1 for never.
    static func milliseconds(until moment: UInt64?) -> Int32 {
        guard let moment else { return -1 }
        let now = now()
        guard moment > now else { return 0 }
        return Int32(min((moment - now) / 1_000_000 + 1, UInt64(Int32.max)))
    }

    /// Writes input, reads outputs and the report until the command is gone and its outputs are
    /// read, stopping it at its deadline or when `standardOutput` throws.
    mutating func follow(
        _ command: Subprocess.Command, standardOutput: (Data) throws -> Void, standardError: (Data) throws -> Void
    ) throws -> Subprocess.Ending {
        let deadline = command.timeout.map { Self.after($0, from: Self.now()) }
        var stopAt: UInt64?  // asked the reaper to stop; past this, kill it
        var drainUntil: UInt64?  // the command is gone; outputs get this long to end
        var timedOut = false
        var failure: (any Error)?
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let finished = waitStatus != nil || reportEnded
            if finished, drainUntil == nil {
                drainUntil = Self.after(Subprocess.drainGrace, from: Self.now())
                // Input nobody will read any more.
                if input >= 0 {
                    close(input)
                    input = -1
                }
            }
            if finished, output < 0, error < 0 { break }
            let now = Self.now()
            if let drainUntil, now >= drainUntil { break }
            if !finished, let stopAt, now >= stopAt {
                // The reaper did not report in time: kill it and whatever is left of the group.
                kill(reaper, SIGKILL)
                if let commandPID, commandPID > 0 { kill(-commandPID, SIGKILL) }
                break
            }
            if !finished, stopAt == nil, let deadline, now >= deadline {
                timedOut = true
                stop(&stopAt)
            }
            var fds: [pollfd] = []
            for fd in [output, error, report] where fd >= 0 { fds.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0)) }
            if input >= 0 { fds.append(pollfd(fd: input, events: Int16(POLLOUT), revents: 0)) }
            let wakeAt = drainUntil ?? stopAt ?? deadline
            if poll(&fds, nfds_t(fds.count), Self.milliseconds(until: wakeAt)) < 0, errno != EINTR { break }
            for entry in fds where entry.revents != 0 {
                switch entry.fd {
                case output, error:
                    let isOutput = entry.fd == output
                    let n = read(entry.fd, &buffer, buffer.count)
                    if n < 0, errno == EAGAIN || errno == EINTR { continue }
                    if n <= 0 {
                        close(entry.fd)
                        if isOutput { output = -1 } else { error = -1 }
                        continue
                    }
                    guard failure == nil else { continue }
                    do {
                        try (isOutput ? standardOutput : standardError)(Data(buffer[0..<n]))
                    } catch let thrown {
                        failure = thrown
                        stop(&stopAt)
                    }
                case report:
                    readReport(&buffer)
                case input:
                    writeInput()
                default:
                    continue
                }
            }
        }
        closeAll(keepingInputReader: true)
        let unread = (bytes.count - written) + max(0, inputReader >= 0 ? Int(stet_pipe_pending(inputReader)) : 0)
        var reaped: Int32 = 0
        while waitpid(reaper, &reaped, 0) < 0, errno == EINTR {}
        if let failure { throw failure }
        if timedOut, let timeout = command.timeout {
            throw Subprocess.Stopped(description: "did not finish within \(String(format: "%g", timeout)) s; stopped")
        }
        if let commandPID, commandPID < 0 {
            throw Subprocess.CannotStart(description: "cannot start \(command.executable): \(Self.errorText(-commandPID))")
        }
        guard let status = waitStatus else {
            throw Subprocess.Stopped(description: "its reaper was killed before the command ended; stopped")
        }
        if status & 0x7F == 0 { return Subprocess.Ending(status: (status >> 8) & 0xFF, signal: nil, unreadInput: unread) }
        let signal = status & 0x7F
        return Subprocess.Ending(status: 128 + signal, signal: signal, unreadInput: unread)
    }

    /// Asks the reaper to kill the command and everything it started.
    mutating func stop(_ stopAt: inout UInt64?) {
        guard stopAt == nil else { return }
        kill(reaper, SIGTERM)
        stopAt = Self.after(Subprocess.reaperGrace, from: Self.now())
    }

    /// The reaper's records: the command's pid (or minus an errno), then its wait status.
    mutating func readReport(_ buffer: inout [UInt8]) {
        let n = read(report, &buffer, buffer.count)
        if n < 0, errno == EAGAIN || errno == EINTR { return }
        if n <= 0 {
            close(report)
            report = -1
            reportEnded = true
            return
        }
        reportBuffer.append(contentsOf: buffer[0..<n])
        func record(_ index: Int) -> Int32? {
            guard reportBuffer.count >= 4 * (index + 1) else { return nil }
            return reportBuffer[(4 * index)..<(4 * index + 4)].withUnsafeBytes { $0.loadUnaligned(as: Int32.self) }
        }
        commandPID = record(0)
        if let pid = commandPID, pid < 0 { reportEnded = true }
        waitStatus = record(1)
    }

    /// Writes as much input as the pipe takes now.
    mutating func writeInput() {
        let n = bytes.withUnsafeBytes { raw in
            Glibc.write(input, raw.baseAddress! + written, min(raw.count - written, 1 << 16))
        }
        if n < 0 {
            if errno == EAGAIN || errno == EINTR { return }
            close(input)
            input = -1
            return
        }
        written += n
        if written == bytes.count {
            close(input)
            input = -1
        }
    }

    mutating func closeAll(keepingInputReader: Bool) {
        let reader = inputReader
        inputReader = -1
        closeAll()
        if keepingInputReader { inputReader = reader } else if reader >= 0 { close(reader) }
    }
}
