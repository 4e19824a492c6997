public import Foundation

/// RFC 3339 times in UTC, whole seconds: `2026-11-29T10:00:00Z`.
public enum RFC3339 {
    /// UTC with a `Z`; `milliseconds` adds `.mmm` (audit entries, where order within a second
    /// matters to a reader).
    public static func format(_ date: Date, milliseconds: Bool = false) -> String {
        // Years 0001 to 9999, what the format writes: a date beyond them (arithmetic on a number
        // from outside) is written at the bound, and NaN as 1970, rather than trapping.
        let bounded = min(max((date.timeIntervalSince1970 * 1000).rounded(.down), -62_135_596_800_000), 253_402_300_799_999)
        let totalMilliseconds = Int64(saturating: bounded)
        var seconds = time_t(totalMilliseconds.quotientAndRemainder(dividingBy: 1000).quotient)
        var fraction = Int(totalMilliseconds % 1000)
        if fraction < 0 {
            seconds -= 1
            fraction += 1000
        }
        var parts = tm()
        gmtime_r(&seconds, &parts)
        let base = String(
            format: "%04d-%02d-%02dT%02d:%02d:%02d", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1,
            Int(parts.tm_mday), Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec))
        return milliseconds ? base + String(format: ".%03dZ", fraction) : base + "Z"
    }

    /// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`; nil for anything else.
    public static func parse(_ text: String) -> Date? {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        if let date = formatter.date(from: text) { return date }
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.date(from: text)
    }
}
