/// A cron schedule of five fields, as crontab(5) writes them: minute, hour, day of month, month,
/// day of week. Each field is `*` or a list of numbers, ranges (`1-5`) and steps (`*/15`,
/// `0-30/10`); months and weekdays may be named (`jan`, `mon`), Sunday is 0 or 7. When both day
/// fields are restricted, a day matches either (Vixie cron's rule). `@hourly`, `@daily`,
/// `@weekly`, `@monthly` and `@yearly` stand for their usual five fields.
///
/// Times are wall-clock times in a zone (`ZoneInfo`). A time that a daylight-saving change skips
/// happens when the clock jumps past it (once, however many of the schedule's times fell into
/// the gap); a time that happens twice (clocks going back) starts once, at its first occurrence.
public struct CronSchedule: Hashable, Sendable, Codable, CustomStringConvertible {
    /// The schedule as written.
    public let text: String
    private let minutes: UInt64
    private let hours: UInt64
    private let daysOfMonth: UInt64
    private let months: UInt64
    private let weekdays: UInt64
    private let daysOfMonthRestricted: Bool
    private let weekdaysRestricted: Bool

    public struct ParseError: Error, Equatable, Sendable, CustomStringConvertible {
        public let message: String
        public var description: String { message }
    }

    private struct Field {
        let name: String
        let range: ClosedRange<Int>
        let names: [String]
        /// The value that stands for another (Sunday as 7).
        let alias: (Int, Int)?
    }

    private static let fields = [
        Field(name: "minute", range: 0...59, names: [], alias: nil),
        Field(name: "hour", range: 0...23, names: [], alias: nil),
        Field(name: "day of month", range: 1...31, names: [], alias: nil),
        Field(name: "month", range: 1...12,
              names: ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], alias: nil),
        Field(name: "day of week", range: 0...7, names: ["sun", "mon", "tue", "wed", "thu", "fri", "sat"], alias: (7, 0)),
    ]

    private static let macros = [
        "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
        "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
    ]

    public init(parsing text: String) throws(ParseError) {
        guard text.utf8.count <= 200 else { throw ParseError(message: "expected a cron schedule of at most 200 characters") }
        self.text = text
        let expanded = Self.macros[text.lowercased()] ?? text
        let parts = expanded.split(whereSeparator: { $0 == " " || $0 == "\t" })
        guard parts.count == 5 else {
            throw ParseError(message: "expected five fields (minute hour day-of-month month day-of-week) or @daily, @hourly, "
                + "@weekly, @monthly, @yearly; found \(parts.count) field\(parts.count == 1 ? "" : "s")")
        }
        var masks: [UInt64] = []
        for (part, field) in zip(parts, Self.fields) { masks.append(try Self.parse(String(part), field)) }
        minutes = masks[0]
        hours = masks[1]
        daysOfMonth = masks[2]
        months = masks[3]
        weekdays = masks[4]
        daysOfMonthRestricted = !parts[2].hasPrefix("*")
        weekdaysRestricted = !parts[4].hasPrefix("*")
        // A schedule that never fires (`0 0 31 2 *`) is a mistake, not a window that never opens.
        guard next(after: 0, in: .utc) != nil else {
            throw ParseError(message: "expected a schedule that happens: \"\(text)\" matches no day")
        }
    }

    private static func parse(_ text: String, _ field: Field) throws(ParseError) -> UInt64 {
        var mask: UInt64 = 0
        for item in text.split(separator: ",", omittingEmptySubsequences: false) {
            let pieces = item.split(separator: "/", omittingEmptySubsequences: false)
            guard pieces.count <= 2 else { throw problem(field, "\"\(item)\" has more than one /") }
            var step = 1
            if pieces.count == 2 {
                guard let value = Int(pieces[1]), value >= 1, value <= field.range.upperBound + 1 else {
                    throw problem(field, "expected a step from 1 to \(field.range.upperBound + 1), found \"\(pieces[1])\"")
                }
                step = value
            }
            let range: ClosedRange<Int>
            if pieces[0] == "*" {
                range = field.range
            } else {
                let bounds = pieces[0].split(separator: "-", omittingEmptySubsequences: false)
                guard bounds.count <= 2, let low = value(bounds[0], field) else {
                    throw problem(field, "expected *, a number from \(field.range.lowerBound) to \(field.range.upperBound)"
                        + (field.names.isEmpty ? "" : " or a name (\(field.names.prefix(3).joined(separator: ", ")), …)")
                        + ", or a range; found \"\(item)\"")
                }
                var high = bounds.count == 2 ? value(bounds[1], field) : (pieces.count == 2 ? field.range.upperBound : low)
                if bounds.count == 2, high == nil {
                    throw problem(field, "expected the end of the range \"\(item)\" to be from \(field.range.lowerBound) to \(field.range.upperBound)")
                }
                // `0-7` of weekdays is fine; `5-2` is not.
                if field.alias != nil, bounds.count == 2, high == 0, bounds[1] != "0" { high = 7 }
                guard let end = high, low <= end else { throw problem(field, "expected a range from low to high, found \"\(item)\"") }
                range = low...end
            }
            for value in stride(from: range.lowerBound, through: range.upperBound, by: step) {
                let stored = field.alias.map { value == $0.0 ? $0.1 : value } ?? value
                mask |= 1 << UInt64(stored)
            }
        }
        return mask
    }

    private static func value(_ text: Substring, _ field: Field) -> Int? {
        if let index = field.names.firstIndex(of: text.lowercased()) { return index + (field.range.lowerBound == 1 ? 1 : 0) }
        guard text.count <= 2, let number = Int(text), field.range.contains(number) else { return nil }
        return number
    }

    private static func problem(_ field: Field, _ message: String) -> ParseError { ParseError(message: "\(field.name): \(message)") }

    private func has(_ mask: UInt64, _ value: Int64) -> Bool { value >= 0 && value < 64 && mask & (1 << UInt64(value)) != 0 }

    private func matches(days: Int64) -> Bool {
        let date = CivilDate(days: days)
        guard has(months, date.month) else { return false }
        let dayOK = has(daysOfMonth, date.day)
        let weekdayOK = has(weekdays, CivilDate.weekday(days: days))
        return daysOfMonthRestricted && weekdaysRestricted ? dayOK || weekdayOK : dayOK && weekdayOK
    }

    /// The first time strictly after `instant` (seconds since the epoch) that the schedule
    /// names, in `zone`; nil when none falls within about five years (only a schedule such as
    /// February 30, which the parser refuses).
    public func next(after instant: Int64, in zone: ZoneInfo) -> Int64? {
        let instant = min(max(instant, -1_000_000_000_000), 1_000_000_000_000)
        let wallAfter = instant + zone.offset(at: instant)
        // Wall times up to a few hours before `wallAfter` can still fall after `instant` around
        // a change of offset; earlier ones cannot.
        let earliestWall = wallAfter - 4 * 3600
        let firstDay = earliestWall.floorDivided(by: 86_400)
        for days in firstDay...(firstDay + 5 * 366) where matches(days: days) {
            for hour in 0..<24 where has(hours, Int64(hour)) {
                let hourWall = days * 86_400 + Int64(hour) * 3600
                guard hourWall + 3600 > earliestWall else { continue }
                for minute in 0..<60 where has(minutes, Int64(minute)) {
                    let wall = hourWall + Int64(minute) * 60
                    guard wall >= earliestWall else { continue }
                    let start = zone.firstInstant(atOrAfterWallTime: wall)
                    if start > instant { return start }
                }
            }
        }
        return nil
    }

    public var description: String { text }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        do { try self.init(parsing: text) } catch {
            throw DecodingError.dataCorrupted(DecodingError.Context(codingPath: decoder.codingPath, debugDescription: error.message))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(text)
    }
}
