import Foundation

/// The checks on what a person or a pipeline gives a git source (`--source`, `--ref`,
/// `--branch`, `--path`), made before git runs. The messages name those options, the only way
/// these values reach Stet.
extension GitSource {
    /// The longest URL or manifest path Stet takes, in bytes.
    static let maximumLength = 4096

    static let expectedURL = "expected a local path, file://, https://, ssh:// or user@host:path"

    /// Refuses anything git could read as an option (a leading `-`) or as another transport
    /// than a local path, file://, https://, ssh:// or scp-like `[user@]host:path`: remote
    /// helpers (`ext::`, `fd::`), other schemes, control characters, and absurd lengths.
    static func checkURL(_ url: String) throws(Failure) {
        let refusal = Failure(description: "--source git:\(shown(url)): \(expectedURL)")
        guard !url.isEmpty, url.utf8.count <= maximumLength, !hasControlCharacter(url), !url.hasPrefix("-") else {
            throw refusal
        }
        // git reads `NAME::ADDRESS` as a remote helper and `NAME://` as a URL of that scheme.
        let scheme = url.prefix { $0.isASCII && ($0.isLetter || $0.isNumber || "+-.".contains($0)) }
        let rest = url.dropFirst(scheme.count)
        if rest.hasPrefix("::") { throw refusal }
        if rest.hasPrefix("://") {
            guard ["file", "https", "ssh"].contains(scheme) else { throw refusal }
            if scheme == "file" { return }
            // user@host:port: neither part may look like an option to ssh.
            let authority = rest.dropFirst(3).prefix { $0 != "/" }
            let parts = authority.split(separator: "@", maxSplits: 1, omittingEmptySubsequences: false)
            guard !authority.isEmpty, parts.allSatisfy({ !$0.isEmpty && !$0.hasPrefix("-") }) else { throw refusal }
            return
        }
        // scp-like: a colon before any slash. `[user@]host:path`, plain names only.
        if let colon = url.firstIndex(of: ":"), !url[..<colon].contains("/") {
            let target = url[..<colon].split(separator: "@", maxSplits: 1, omittingEmptySubsequences: false)
            let path = url[url.index(after: colon)...]
            guard target.allSatisfy(isPlainName), !path.hasPrefix("-"), !url.contains("::") else { throw refusal }
            return
        }
        // Otherwise a local path, absolute or relative (not starting with `-`, checked above).
    }

    /// A host or user name of an scp-like URL: letters, digits, `.`, `_`, `-`, not starting
    /// with `-`.
    static func isPlainName(_ name: Substring) -> Bool {
        !name.isEmpty && !name.hasPrefix("-")
            && name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) }
    }

    /// A branch, tag or commit name within what `git check-ref-format --allow-onelevel` takes:
    /// letters, digits and `. _ - + /`, not starting with `-`, `.` or `/`, no `..` or `//`,
    /// no component starting with `.`, not ending with `/`, `.` or `.lock`.
    static func checkRef(_ ref: String, option: String) throws(Failure) {
        let components = ref.split(separator: "/", omittingEmptySubsequences: false)
        guard ref.utf8.count <= 255,
            ref.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "._-+/".contains($0)) }),
            !ref.hasPrefix("-"), !ref.contains(".."),
            components.allSatisfy({ !$0.isEmpty && !$0.hasPrefix(".") && !$0.hasSuffix(".lock") }),
            !ref.hasSuffix(".")
        else {
            throw Failure(description: "\(option) \(shown(ref)): expected a branch, tag or commit name "
                + "(letters, digits and . _ - + /, not starting with - or .)")
        }
    }

    /// The manifest directory inside the repository: relative, without `..`. Returns it
    /// normalised (no empty or `.` components; "" for the root).
    static func checkPath(_ path: String) throws(Failure) -> String {
        let components = path.split(separator: "/").filter { $0 != "." }
        guard !path.isEmpty, path.utf8.count <= maximumLength, !hasControlCharacter(path), !path.hasPrefix("/"),
            !components.contains("..")
        else {
            throw Failure(description: "--path \(shown(path)): expected a directory inside the repository: "
                + "a relative path without '..'")
        }
        return components.joined(separator: "/")
    }

    /// A full object id: 40 (SHA-1) or 64 (SHA-256) lowercase hex digits.
    static func isObjectID(_ text: String) -> Bool {
        (text.utf8.count == 40 || text.utf8.count == 64) && text.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }

    static func hasControlCharacter(_ text: String) -> Bool {
        text.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7f }
    }

    /// `text` as an error shows it: control characters escaped, at most 200 characters.
    static func shown(_ text: String) -> String {
        let escaped = text.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7f ? $0.escaped(asASCII: true) : String($0) }
        return escaped.prefix(200).joined() + (escaped.count > 200 ? "…" : "")
    }
}
