/// A backup policy's `exclude` patterns with restic's own meaning (restic 0.14, `--exclude`), so
/// that the files Stet lists for a snapshot are the files restic put in it.
///
/// restic cleans each pattern (Go's `filepath.Clean`) and splits it into path components, as it
/// splits the absolute path of every file it meets. A pattern starting with `/` matches from the
/// root; any other matches any run of consecutive components (`data/cache` matches
/// `/srv/data/cache` and everything below it, `sub/*.tmp` only files directly in a `sub`). Each
/// component is a Go `filepath.Match` pattern (`*`, `?`, `[a-z]`, `[^a]`, `\` escapes); a
/// component `**` stands for any number of components. A pattern starting with `!` re-includes
/// what an earlier one excluded. An excluded directory is not entered, so nothing below it can be
/// re-included.
public struct ResticExclude: Sendable {
    struct Pattern: Sendable {
        /// Components; `"/"` first for a rooted pattern, nil for `**`.
        var parts: [Part?]
        var negated: Bool
    }

    struct Part: Sendable {
        var bytes: [UInt8]
        /// Compared byte for byte (no `\ [ ] * ?`).
        var simple: Bool
    }

    let patterns: [Pattern]

    /// The patterns as restic reads them; empty ones are ignored, as restic does. Check them with
    /// `problem(in:)` first: restic refuses to back up with a malformed one.
    public init(_ patterns: [String]) {
        self.patterns = patterns.filter { !$0.isEmpty }.map(Self.prepare)
    }

    /// Why restic would refuse `pattern` (`--exclude: invalid pattern(s) provided`), or nil.
    public static func problem(in pattern: String) -> String? {
        guard !pattern.isEmpty else { return nil }
        if pattern.utf8.contains(0) { return "it contains a NUL byte" }
        // Only a part with one of `\[]*?` can be invalid; most patterns are plain paths.
        if !pattern.utf8.contains(where: { "\\[]*?".utf8.contains($0) }) { return nil }
        // A pattern of one component (no `/`, the usual `*.tmp`) is its own part: cleaning
        // changes only `.` and `..`, which hold none of those characters.
        var single = pattern.utf8[...]
        if single.first == UInt8(ascii: "!") { single = single.dropFirst() }
        if !single.contains(UInt8(ascii: "/")) {
            let bytes = Array(single)
            guard bytes != Array("**".utf8), case .failure = GoMatch.match(bytes[...], bytes[...]) else { return nil }
            return invalid(bytes)
        }
        for part in prepare(pattern).parts.compactMap({ $0 }) where !part.simple {
            if case .failure = GoMatch.match(part.bytes[...], part.bytes[...]) { return invalid(part.bytes) }
        }
        return nil
    }

    private static func invalid(_ part: [UInt8]) -> String {
        "\(String(decoding: part, as: UTF8.self)) is not a valid pattern (an unclosed [ or a trailing \\)"
    }

    /// Whether restic leaves out the file or directory at `path` (absolute and clean, as restic
    /// names what it backs up), looking at the path alone.
    public func excludes(_ path: String) -> Bool {
        guard !patterns.isEmpty, !path.isEmpty else { return false }
        let components = Self.split(Array(path.utf8))
        var matched = false
        for pattern in patterns {
            let hit = Self.match(pattern.parts, components)
            matched = pattern.negated ? matched && !hit : matched || hit
        }
        return matched
    }

    static func prepare(_ text: String) -> Pattern {
        var bytes = Array(text.utf8)
        let negated = bytes.first == UInt8(ascii: "!")
        if negated { bytes.removeFirst() }
        let parts = split(Array(clean(String(decoding: bytes, as: UTF8.self)).utf8)).map { part -> Part? in
            if part == Array("**".utf8) { return nil }
            return Part(bytes: part, simple: !part.contains { "\\[]*?".utf8.contains($0) })
        }
        return Pattern(parts: parts, negated: negated)
    }

    /// Path components; an absolute path's first component is `/`.
    static func split(_ path: [UInt8]) -> [[UInt8]] {
        var parts = path.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false).map(Array.init)
        if parts.first?.isEmpty == true { parts[0] = [UInt8(ascii: "/")] }
        return parts
    }

    /// Go's `filepath.Clean`: the shortest lexically equal path (no `.`, no `..` that can be
    /// resolved, no doubled or trailing `/`).
    ///
    /// Worked on bytes, as Go does: a `/` is a separator even where a combining mark follows it
    /// (to Swift's characters, `/` and U+0301 are one character, not a `/`).
    public static func clean(_ path: String) -> String {
        guard !path.isEmpty else { return "." }
        let slash = UInt8(ascii: "/")
        let bytes = Array(path.utf8)
        let rooted = bytes.first == slash
        var kept: [ArraySlice<UInt8>] = []
        for part in bytes.split(separator: slash, omittingEmptySubsequences: true) {
            if part.elementsEqual(".".utf8) { continue }
            if part.elementsEqual("..".utf8) {
                if let last = kept.last, !last.elementsEqual("..".utf8) {
                    kept.removeLast()
                } else if !rooted {
                    kept.append(part)
                }
                continue
            }
            kept.append(part)
        }
        var joined: [UInt8] = rooted ? [slash] : []
        for (index, part) in kept.enumerated() {
            if index > 0 { joined.append(slash) }
            joined += part
        }
        // Cut only at `/` bytes, which no longer UTF-8 sequence holds: still the text it was.
        return joined.isEmpty ? "." : String(decoding: joined, as: UTF8.self)
    }

    /// restic's `filter.match`: `**` is tried as zero, one, two … components; otherwise the
    /// pattern matches at any offset (only at the root when it is rooted).
    static func match(_ parts: [Part?], _ strs: [[UInt8]]) -> Bool {
        if let position = parts.firstIndex(where: { $0 == nil }) {
            let prefix = Array(parts[..<position])
            let rest = Array(parts[(position + 1)...])
            let most = strs.count - parts.count + 1
            guard most >= 0 else { return false }
            let star = Part(bytes: [UInt8(ascii: "*")], simple: false)
            for stars in 0...most where match(prefix + Array(repeating: star, count: stars) + rest, strs) {
                return true
            }
            return false
        }
        if parts.isEmpty { return strs.isEmpty }
        guard parts.count <= strs.count else { return false }
        let slash = [UInt8(ascii: "/")]
        var lowest = 0
        var highest = strs.count - parts.count
        if parts[0]?.bytes == slash {
            highest = 0
        } else if strs[0] == slash {
            lowest = 1
        }
        guard highest >= lowest else { return false }
        offsets: for offset in stride(from: highest, through: lowest, by: -1) {
            for index in stride(from: parts.count - 1, through: 0, by: -1) {
                let part = parts[index]!
                let name = strs[offset + index]
                let ok = part.simple ? part.bytes == name : (try? GoMatch.match(part.bytes[...], name[...]).get()) ?? false
                if !ok { continue offsets }
            }
            return true
        }
        return false
    }
}

/// Go's `path/filepath.Match` on Unix, byte for byte: `*` any run without `/`, `?` one character
/// that is not `/`, `[…]` a class (`^` negates, `lo-hi` ranges, `\` escapes), `\c` the character
/// c. A malformed pattern is a failure, whatever the name (as Go 1.16 and later report it).
enum GoMatch {
    struct BadPattern: Error {}

    static func match(_ pattern: ArraySlice<UInt8>, _ name: ArraySlice<UInt8>) -> Result<Bool, BadPattern> {
        var pattern = pattern
        var name = name
        patterns: while !pattern.isEmpty {
            let (star, chunk, rest) = scanChunk(pattern)
            pattern = rest
            if star && chunk.isEmpty {
                // A trailing * matches the rest unless it holds a /.
                return .success(!name.contains(UInt8(ascii: "/")))
            }
            let here: (rest: ArraySlice<UInt8>, ok: Bool)
            switch matchChunk(chunk, name) {
            case .failure(let bad): return .failure(bad)
            case .success(let result): here = result
            }
            if here.ok && (here.rest.isEmpty || !pattern.isEmpty) {
                name = here.rest
                continue
            }
            if star {
                var index = name.startIndex
                while index < name.endIndex && name[index] != UInt8(ascii: "/") {
                    switch matchChunk(chunk, name[(index + 1)...]) {
                    case .failure(let bad): return .failure(bad)
                    case .success(let skipped):
                        if skipped.ok {
                            if pattern.isEmpty && !skipped.rest.isEmpty {
                                index += 1
                                continue
                            }
                            name = skipped.rest
                            continue patterns
                        }
                    }
                    index += 1
                }
            }
            // No match: the rest of the pattern must still be well formed.
            while !pattern.isEmpty {
                let (_, chunk, rest) = scanChunk(pattern)
                pattern = rest
                if case .failure(let bad) = matchChunk(chunk, []) { return .failure(bad) }
            }
            return .success(false)
        }
        return .success(name.isEmpty)
    }

    static func scanChunk(_ pattern: ArraySlice<UInt8>) -> (star: Bool, chunk: ArraySlice<UInt8>, rest: ArraySlice<UInt8>) {
        var pattern = pattern
        var star = false
        while pattern.first == UInt8(ascii: "*") {
            pattern = pattern.dropFirst()
            star = true
        }
        var inRange = false
        var index = pattern.startIndex
        scan: while index < pattern.endIndex {
            switch pattern[index] {
            case UInt8(ascii: "\\"):
                if index + 1 < pattern.endIndex { index += 1 }
            case UInt8(ascii: "["): inRange = true
            case UInt8(ascii: "]"): inRange = false
            case UInt8(ascii: "*"): if !inRange { break scan }
            default: break
            }
            index += 1
        }
        return (star, pattern[..<index], pattern[index...])
    }

    /// Whether `chunk` matches the start of `s`, and what of `s` is left. After a mismatch the
    /// chunk is still read to its end, so a malformed one is reported.
    static func matchChunk(_ chunk: ArraySlice<UInt8>, _ s: ArraySlice<UInt8>) -> Result<(rest: ArraySlice<UInt8>, ok: Bool), BadPattern> {
        var chunk = chunk
        var s = s
        var failed = false
        while let first = chunk.first {
            if !failed && s.isEmpty { failed = true }
            switch first {
            case UInt8(ascii: "["):
                var rune: UInt32 = 0
                if !failed {
                    let (value, length) = decodeRune(s)
                    rune = value
                    s = s.dropFirst(length)
                }
                chunk = chunk.dropFirst()
                var negated = false
                if chunk.first == UInt8(ascii: "^") {
                    negated = true
                    chunk = chunk.dropFirst()
                }
                var matched = false
                var ranges = 0
                while true {
                    if chunk.first == UInt8(ascii: "]") && ranges > 0 {
                        chunk = chunk.dropFirst()
                        break
                    }
                    guard let (low, afterLow) = escaped(chunk) else { return .failure(BadPattern()) }
                    chunk = afterLow
                    var high = low
                    if chunk.first == UInt8(ascii: "-") {
                        guard let (value, afterHigh) = escaped(chunk.dropFirst()) else { return .failure(BadPattern()) }
                        high = value
                        chunk = afterHigh
                    }
                    if low <= rune && rune <= high { matched = true }
                    ranges += 1
                }
                if matched == negated { failed = true }
            case UInt8(ascii: "?"):
                if !failed {
                    if s.first == UInt8(ascii: "/") { failed = true }
                    s = s.dropFirst(decodeRune(s).length)
                }
                chunk = chunk.dropFirst()
            default:
                if first == UInt8(ascii: "\\") {
                    chunk = chunk.dropFirst()
                    if chunk.isEmpty { return .failure(BadPattern()) }
                }
                if !failed {
                    if chunk.first != s.first { failed = true }
                    s = s.dropFirst()
                }
                chunk = chunk.dropFirst()
            }
        }
        return .success(failed ? ([], false) : (s, true))
    }

    /// A possibly escaped character of a class, and what follows it; nil when malformed (a class
    /// must go on after it, up to its `]`).
    static func escaped(_ chunk: ArraySlice<UInt8>) -> (UInt32, ArraySlice<UInt8>)? {
        var chunk = chunk
        guard let first = chunk.first, first != UInt8(ascii: "-"), first != UInt8(ascii: "]") else { return nil }
        if first == UInt8(ascii: "\\") {
            chunk = chunk.dropFirst()
            if chunk.isEmpty { return nil }
        }
        let (rune, length) = decodeRune(chunk)
        if rune == 0xFFFD && length == 1 { return nil }
        let rest = chunk.dropFirst(length)
        if rest.isEmpty { return nil }
        return (rune, rest)
    }

    /// Go's `utf8.DecodeRuneInString`: an invalid byte is U+FFFD of length 1.
    static func decodeRune(_ s: ArraySlice<UInt8>) -> (value: UInt32, length: Int) {
        guard let first = s.first else { return (0xFFFD, 0) }
        if first < 0x80 { return (UInt32(first), 1) }
        let length = first >= 0xF0 ? 4 : first >= 0xE0 ? 3 : first >= 0xC0 ? 2 : 0
        guard length > 0, s.count >= length else { return (0xFFFD, 1) }
        var decoder = UTF8()
        var iterator = s.prefix(length).makeIterator()
        if case .scalarValue(let scalar) = decoder.decode(&iterator), scalar.utf8.count == length {
            return (scalar.value, length)
        }
        return (0xFFFD, 1)
    }
}
