import Foundation
import StetState

/// Writes a commit's tree as git stores it: every blob byte for byte, read with `git ls-tree`
/// and `git cat-file --batch`. Not `git archive`, which applies the tree's own
/// `.gitattributes` (`export-ignore` would hide a file from verification, `export-subst`,
/// `ident`, `eol` and filters would change the bytes that are verified).
///
/// The tree comes from whoever can push, so it is bounded and checked before a byte is
/// written: at most `maximumEntries` entries and `maximumBytes` in all, paths of UTF-8
/// components without `.` or `..`, no path twice. Directories and files are created first
/// (exclusively, never through a link), symbolic links last, so nothing is ever written
/// through a link.
extension GitSource {
    static let maximumEntries = 100_000
    static let maximumBytes = 1 << 30
    /// Bounds the listing `git ls-tree` prints (names and object ids).
    static let maximumListing = 32 << 20
    static let maximumLinkTarget = 4096

    struct TreeEntry {
        enum Kind: Equatable {
            case file(mode: mode_t)
            case link
            /// A submodule's commit: an empty directory, as `git archive` writes it.
            case submodule
        }

        var kind: Kind
        var object: String
        var size: Int
        var path: String
    }

    func export(_ commit: String, into directory: String) throws {
        let listing = try git(["--git-dir", mirror, "ls-tree", "-r", "-l", "-z", "--full-tree", commit], maximumOutput: Self.maximumListing)
        let entries = try Self.parseTree(listing, commit: commit)
        // Folders (and submodules) first, then files, then links: no link exists while
        // anything else is written.
        for entry in entries {
            let full = directory + "/" + entry.path
            let parent = (full as NSString).deletingLastPathComponent
            do {
                try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
                if entry.kind == .submodule { try FileManager.default.createDirectory(atPath: full, withIntermediateDirectories: false) }
            } catch {
                throw Failure(description: "commit \(commit) cannot be unpacked: \(Self.shown(entry.path)) is both a file and a folder")
            }
        }
        let blobs = entries.filter { if case .file = $0.kind { true } else { false } } + entries.filter { $0.kind == .link }
        let requests = store.path("git/objects.list")
        try AtomicFile.write(Data(blobs.map { $0.object + "\n" }.joined().utf8), to: absolute(requests), mode: 0o600)
        defer { unlink(absolute(requests)) }
        let writer = BlobWriter(blobs, directory: directory, commit: commit)
        defer { writer.close() }
        try git(["--git-dir", mirror, "cat-file", "--batch"], input: absolute(requests)) { try writer.consume($0) }
        try writer.finish()
    }

    /// Parses `git ls-tree -r -l -z` output: `MODE TYPE OBJECT SIZE<TAB>PATH<NUL>` …
    static func parseTree(_ listing: Data, commit: String) throws(Failure) -> [TreeEntry] {
        func refuse(_ why: String) -> Failure { Failure(description: "commit \(commit) cannot be unpacked: \(why)") }
        var entries: [TreeEntry] = []
        var seen: Set<String> = []
        var total = 0
        for record in listing.split(separator: 0) {
            guard entries.count < maximumEntries else { throw refuse("more than \(maximumEntries) files") }
            guard let tab = record.firstIndex(of: 9) else { throw refuse("git ls-tree printed a line without a name") }
            let fields = record[record.startIndex..<tab].split(separator: 32)
            guard fields.count == 4 else { throw refuse("git ls-tree printed a line Stet cannot read") }
            guard let path = String(validating: record[record.index(after: tab)...], as: UTF8.self) else {
                throw refuse("a name is not UTF-8 (\(shown(String(decoding: record[record.index(after: tab)...], as: UTF8.self))))")
            }
            let mode = String(decoding: fields[0], as: UTF8.self), type = String(decoding: fields[1], as: UTF8.self)
            let object = String(decoding: fields[2], as: UTF8.self), sizeText = String(decoding: fields[3], as: UTF8.self)
            guard path.utf8.count <= maximumLength,
                path.split(separator: "/", omittingEmptySubsequences: false).allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." })
            else { throw refuse("the name \(shown(path)) is not a relative path without '.' or '..'") }
            guard seen.insert(path).inserted else { throw refuse("\(shown(path)) appears twice") }
            guard isObjectID(object) else { throw refuse("\(shown(path)) has no object id") }
            let kind: TreeEntry.Kind
            switch (mode, type) {
            case ("100755", "blob"): kind = .file(mode: 0o755)
            case ("100644", "blob"), ("100664", "blob"): kind = .file(mode: 0o644)
            case ("120000", "blob"): kind = .link
            case ("160000", "commit"): kind = .submodule
            default: throw refuse("\(shown(path)) has mode \(mode) \(type), which Stet does not unpack")
            }
            var size = 0
            if kind != .submodule {
                guard let parsed = Int(sizeText), parsed >= 0, parsed <= maximumBytes - total else {
                    throw refuse("its files hold more than \(maximumBytes >> 20) MiB")
                }
                guard kind != .link || parsed <= maximumLinkTarget else {
                    throw refuse("the symbolic link \(shown(path)) is longer than \(maximumLinkTarget) bytes")
                }
                size = parsed
                total += parsed
            }
            entries.append(TreeEntry(kind: kind, object: object, size: size, path: path))
        }
        return entries
    }
}

/// Writes the blobs `git cat-file --batch` prints (`OBJECT TYPE SIZE<LF>CONTENT<LF>` each, in
/// the order they were asked for) to their files, as they arrive.
private final class BlobWriter {
    private let entries: [GitSource.TreeEntry]
    private let directory: String
    private let commit: String
    private var next = 0
    private var header = Data()
    private var remaining = 0
    private var awaitingNewline = false
    private var file: Int32 = -1
    private var linkTarget = Data()

    init(_ entries: [GitSource.TreeEntry], directory: String, commit: String) {
        self.entries = entries
        self.directory = directory
        self.commit = commit
    }

    private func refuse(_ why: String) -> GitSource.Failure {
        GitSource.Failure(description: "commit \(commit) cannot be unpacked: \(why)")
    }

    private var current: GitSource.TreeEntry { entries[next] }

    func consume(_ chunk: Data) throws {
        var rest = chunk[...]
        while !rest.isEmpty {
            if remaining > 0 {
                let part = rest.prefix(remaining)
                try write(part)
                rest = rest.dropFirst(part.count)
                remaining -= part.count
                if remaining == 0 { try finishBlob() }
            } else if awaitingNewline {
                guard rest.first == 10 else { throw refuse("git cat-file printed no newline after \(GitSource.shown(current.path))") }
                rest = rest.dropFirst()
                awaitingNewline = false
                next += 1
            } else if let newline = rest.firstIndex(of: 10) {
                header.append(rest[rest.startIndex..<newline])
                rest = rest[rest.index(after: newline)...]
                try startBlob()
            } else {
                header.append(rest)
                rest = rest.dropFirst(rest.count)
                guard header.count <= 200 else { throw refuse("git cat-file printed a header that is too long") }
            }
        }
    }

    /// `OBJECT blob SIZE`: the next entry's object, with the size `git ls-tree` gave.
    private func startBlob() throws {
        defer { header = Data() }
        guard next < entries.count else { throw refuse("git cat-file printed more objects than were asked for") }
        let entry = current
        let fields = header.split(separator: 32).map { String(decoding: $0, as: UTF8.self) }
        guard fields.count == 3, fields[0] == entry.object, fields[1] == "blob", Int(fields[2]) == entry.size else {
            throw refuse("git cat-file printed \"\(GitSource.shown(String(decoding: header, as: UTF8.self)))\" for \(GitSource.shown(entry.path))")
        }
        if case .file(let mode) = entry.kind {
            file = open(directory + "/" + entry.path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)
            guard file >= 0 else { throw refuse("cannot create \(GitSource.shown(entry.path)): \(String(cString: strerror(errno)))") }
        }
        linkTarget = Data()
        remaining = entry.size
        if remaining == 0 { try finishBlob() }
    }

    private func write(_ bytes: Data) throws {
        guard file >= 0 else { linkTarget.append(bytes); return }
        try bytes.withUnsafeBytes { (buffer: UnsafeRawBufferPointer) in
            var offset = 0
            while offset < buffer.count {
                let written = Glibc.write(file, buffer.baseAddress! + offset, buffer.count - offset)
                if written < 0 && errno == EINTR { continue }
                guard written > 0 else { throw refuse("cannot write \(GitSource.shown(current.path)): \(String(cString: strerror(errno)))") }
                offset += written
            }
        }
    }

    private func finishBlob() throws {
        awaitingNewline = true
        if file >= 0 {
            Glibc.close(file)
            file = -1
            return
        }
        let path = directory + "/" + current.path
        guard !linkTarget.contains(0), let target = String(validating: linkTarget, as: UTF8.self), !target.isEmpty else {
            throw refuse("the symbolic link \(GitSource.shown(current.path)) has no usable target")
        }
        guard symlink(target, path) == 0 else {
            throw refuse("cannot create the symbolic link \(GitSource.shown(current.path)): \(String(cString: strerror(errno)))")
        }
    }

    /// Every asked-for object was written in full.
    func finish() throws {
        guard next == entries.count, remaining == 0, !awaitingNewline, header.isEmpty else {
            throw refuse("git cat-file ended before every file was written")
        }
    }

    func close() {
        if file >= 0 { Glibc.close(file) }
        file = -1
    }
}
