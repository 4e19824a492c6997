import Foundation
import StetCore
import StetCrypto

/// Everything a provider under test can change, as it is at one moment: every file and folder
/// below the subject's folder, and every process that works there (its working directory or its
/// command line is in the folder). The in-memory provider's world is its table.
struct World: Equatable {
    struct Entry: Equatable {
        /// `file`, `folder`, `link` or `other`.
        var kind: String
        var mode: UInt32
        /// SHA-256 of a file's bytes, a link's target.
        var content: String
        /// Where and when a file was written: a rewrite of the same bytes changes these.
        var inode: UInt64
        var modified: Int64
    }

    var entries: [String: Entry] = [:]
    /// `pid start-time command line` of each process.
    var processes: Set<String> = []
    var memory: ObservedState?

    /// The world of `folder` now.
    static func of(_ folder: String) -> World {
        World(entries: entries(below: folder), processes: processes(in: realPath(folder)))
    }

    /// `path` without links or doubled slashes, as the kernel names a working directory.
    static func realPath(_ path: String) -> String {
        guard let resolved = realpath(path, nil) else { return path }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// What differs from `other`, one line per entry or process, with `ignoring` (paths of
    /// caches, what is below them and the folders that hold them) left out. `exactly` also compares when and where files
    /// were written, not only what they hold.
    func differences(from other: World, ignoring: [String] = [], exactly: Bool) -> [String] {
        // A cache, what is below it, and the folders made to hold it.
        func ignored(_ path: String) -> Bool {
            ignoring.contains { path == $0 || path.hasPrefix($0 + "/") || ($0.hasPrefix(path + "/") && entries[path]?.kind ?? other.entries[path]?.kind == "folder") }
        }
        var lines: [String] = []
        for path in Set(entries.keys).union(other.entries.keys).sorted() where !ignored(path) {
            switch (other.entries[path], entries[path]) {
            case (nil, .some): lines.append("\(path) appeared")
            case (.some, nil): lines.append("\(path) disappeared")
            case (let old?, let new?):
                if old.kind != new.kind || old.mode != new.mode || old.content != new.content {
                    lines.append("\(path) changed")
                } else if exactly, old.inode != new.inode || old.modified != new.modified {
                    lines.append("\(path) was written again")
                }
            case (nil, nil): break
            }
        }
        for process in processes.subtracting(other.processes).sorted() { lines.append("process started: \(process)") }
        for process in other.processes.subtracting(processes).sorted() { lines.append("process ended: \(process)") }
        if memory != other.memory { lines.append("the in-memory world changed") }
        return lines
    }

    private static func entries(below folder: String) -> [String: Entry] {
        var result: [String: Entry] = [:]
        guard let walker = FileManager.default.enumerator(atPath: folder) else { return result }
        for case let name as String in walker {
            let path = folder + "/" + name
            var info = stat()
            guard lstat(path, &info) == 0 else { continue }
            let type = info.st_mode & S_IFMT
            var entry = Entry(
                kind: "other", mode: UInt32(info.st_mode & 0o7777), content: "", inode: UInt64(info.st_ino),
                modified: Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec))
            switch type {
            case S_IFREG:
                entry.kind = "file"
                entry.content = FileManager.default.contents(atPath: path).map { SHA256.hash($0).hexString } ?? "unreadable"
            case S_IFDIR:
                // A folder's time changes whenever an entry comes and goes (restic's lock files):
                // its entries say what changed.
                entry.kind = "folder"
                entry.modified = 0
                entry.inode = 0
            case S_IFLNK:
                entry.kind = "link"
                entry.content = (try? FileManager.default.destinationOfSymbolicLink(atPath: path)) ?? ""
            default:
                break
            }
            result[name] = entry
        }
        return result
    }

    /// Processes whose working directory or command line is in `folder`: the replicas a
    /// provider started there, restic on a repository there.
    static func processes(in folder: String) -> Set<String> {
        var found: Set<String> = []
        for name in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = Int32(name), pid > 0 else { continue }
            let cwd = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/cwd")) ?? ""
            let command = (FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") ?? Data())
                .split(separator: 0).map { String(decoding: $0, as: UTF8.self) }.joined(separator: " ")
            guard cwd == folder || cwd.hasPrefix(folder + "/") || command.contains(folder) else { continue }
            // Field 22 of stat, after the command's closing parenthesis: a reused pid has another.
            guard let stat = FileManager.default.contents(atPath: "/proc/\(pid)/stat"),
                let close = stat.lastIndex(of: UInt8(ascii: ")"))
            else { continue }
            let fields = stat[(close + 1)...].split(separator: UInt8(ascii: " "))
            guard fields.count > 19, fields[0].first != UInt8(ascii: "Z") else { continue }
            found.insert("\(pid) \(String(decoding: fields[19], as: UTF8.self)) \(command)")
        }
        return found
    }
}
