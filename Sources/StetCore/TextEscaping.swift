/// Text from outside (file names, reasons, other programs' errors) made safe to show on a
/// terminal: control characters and the invisible characters that reorder or hide text are
/// written as visible escapes, so a name cannot fake a line, move the cursor or hide what
/// follows it.
public enum TextEscaping {
    /// `text` with every control character (C0, DEL, C1), line and paragraph separator and
    /// bidirectional or zero-width formatting character escaped: `\n`, `\t`, `\r`, `\e`,
    /// otherwise `\u{…}`. A backslash stays as it is. With `keepNewlines`, `\n` is kept.
    public static func escape(_ text: String, keepNewlines: Bool = false) -> String {
        guard text.unicodeScalars.contains(where: { needsEscape($0, keepNewlines: keepNewlines) }) else { return text }
        var out = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            guard needsEscape(scalar, keepNewlines: keepNewlines) else {
                out.append(scalar)
                continue
            }
            let escaped: String
            switch scalar {
            case "\n": escaped = "\\n"
            case "\t": escaped = "\\t"
            case "\r": escaped = "\\r"
            case "\u{1B}": escaped = "\\e"
            default: escaped = "\\u{" + String(scalar.value, radix: 16) + "}"
            }
            out.append(contentsOf: escaped.unicodeScalars)
        }
        return String(out)
    }

    public static func needsEscape(_ scalar: Unicode.Scalar, keepNewlines: Bool) -> Bool {
        switch scalar.value {
        case 0x0A: return !keepNewlines
        case 0x00...0x1F, 0x7F...0x9F: return true
        // Zero-width and directional marks, line/paragraph separators, bidi embeddings,
        // overrides and isolates, the byte-order mark used as a zero-width space.
        case 0x200B...0x200F, 0x2028...0x202E, 0x2060...0x2069, 0xFEFF: return true
        default: return false
        }
    }

    /// `text` escaped and cut to at most `limit` characters (with `…` and the full length), for
    /// quoting outside input in a message that must stay small.
    public static func excerpt(_ text: String, limit: Int = 120) -> String {
        let escaped = escape(text)
        guard escaped.count > limit else { return escaped }
        return String(escaped.prefix(max(0, limit))) + "… (\(text.utf8.count) bytes)"
    }
}
