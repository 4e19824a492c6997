package import Foundation
import StetCore

/// `restic backup --json`'s standard output, read as it streams: one JSON message a line. A
/// status line (percent, files, bytes) is reported as the action's progress (`ActionProgress`)
/// and dropped; the summary line is kept. Bounded whatever restic writes: a line longer than
/// `lineLimit` is dropped whole, and nothing but the last summary line is kept.
package struct BackupOutput {
    /// The longest line read; restic's messages are a few hundred bytes (a status line names
    /// the files being read, whose names come from the backed-up tree).
    static let lineLimit = 64 << 10

    private var line = Data()
    private var overlong = false
    /// The last `summary` message, as restic wrote it.
    package private(set) var summary: Data?

    package init() {}

    package mutating func consume(_ chunk: Data) {
        var rest = chunk[...]
        while let newline = rest.firstIndex(of: 0x0A) {
            append(rest[rest.startIndex..<newline])
            endLine()
            rest = rest[rest.index(after: newline)...]
        }
        append(rest)
    }

    /// After the last chunk: a last line without its newline is read too.
    package mutating func finish() { endLine() }

    private mutating func append(_ bytes: Data.SubSequence) {
        guard !overlong else { return }
        guard line.count + bytes.count <= Self.lineLimit else {
            overlong = true
            line = Data()
            return
        }
        line.append(contentsOf: bytes)
    }

    private mutating func endLine() {
        defer {
            line = Data()
            overlong = false
        }
        guard !overlong, !line.isEmpty else { return }
        struct Message: Decodable { let message_type: String }
        guard let message = try? JSONDecoder().decode(Message.self, from: line) else { return }
        switch message.message_type {
        case "summary": summary = line
        case "status": if let status = try? JSONDecoder().decode(Status.self, from: line) { ActionProgress.report(status.text) }
        default: break
        }
    }

    /// restic's status message (restic 0.14: `percent_done` from 0 to 1, counts of files and
    /// bytes done and in total, which grow while restic still scans).
    struct Status: Decodable {
        let percent_done: Double?
        let total_files: Int64?
        let files_done: Int64?
        let total_bytes: Int64?
        let bytes_done: Int64?

        /// `42% · 1234 of 5000 files · 1.2 MiB of 3.4 MiB`.
        var text: String {
            let percent = min(max(Int(saturating: (percent_done ?? 0) * 100), 0), 100)
            var parts = ["\(percent)%"]
            if let files_done { parts.append("\(files_done)" + (total_files.map { " of \($0)" } ?? "") + " files") }
            if let bytes_done { parts.append(BackupOutput.bytes(bytes_done) + (total_bytes.map { " of " + BackupOutput.bytes($0) } ?? "")) }
            return parts.joined(separator: " · ")
        }
    }

    /// `512 B`, `1.2 KiB`, `3.4 GiB`.
    static func bytes(_ count: Int64) -> String {
        guard count >= 1024 else { return "\(max(count, 0)) B" }
        var value = Double(count)
        var unit = 0
        let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
        while value >= 1024, unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return String(format: "%.1f", value) + " " + units[unit]
    }
}
