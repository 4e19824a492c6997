public import Foundation

/// A time zone's rules as the system's zoneinfo keeps them (TZif, RFC 8536, versions 1 to 4):
/// the UTC offset and abbreviation in force at any instant. Maintenance windows are evaluated
/// with it, so a window in `Europe/Berlin` follows the same rules as `date` and `zdump` on the
/// host, and changes when Debian's `tzdata` does.
///
/// Pure: the bytes are given (`StetManifest` reads the file, bounded). Every count and index of
/// the file is checked before use; nothing in a hostile file can trap or allocate beyond its
/// own size.
public struct ZoneInfo: Hashable, Sendable, Codable, CustomStringConvertible {
    /// The zone's name (`Europe/Berlin`), or `UTC`.
    public let name: String
    /// The file as read; the rest is derived from it.
    public let bytes: Data
    private let transitions: [Int64]
    private let transitionTypes: [UInt8]
    private let types: [LocalType]
    /// Rules for instants after the last transition (the file's footer), if any.
    private let rule: PosixRule?

    public struct LocalType: Hashable, Sendable {
        /// Seconds east of UTC.
        public let offset: Int32
        public let isDST: Bool
        public let abbreviation: String
    }

    public enum ParseError: Error, Equatable, Sendable, CustomStringConvertible {
        case malformed(String)
        public var description: String {
            switch self {
            case .malformed(let what): "not a zoneinfo (TZif) file: \(what)"
            }
        }
    }

    /// Coordinated Universal Time, which needs no file.
    public static let utc = ZoneInfo(utcNamed: "UTC")

    private init(utcNamed name: String) {
        self.name = name
        bytes = Data()
        transitions = []
        transitionTypes = []
        types = [LocalType(offset: 0, isDST: false, abbreviation: "UTC")]
        rule = nil
    }

    /// The largest zoneinfo file Stet reads; the largest zone of tzdata is under 4 KiB.
    public static let maximumSize = 256 << 10

    /// Whether `name` may name a zone: `Area/Location` parts of letters, digits, `_`, `-` and
    /// `+`, none starting with `.` or `-`, at most 64 bytes. Checked before the name becomes a
    /// path under the zoneinfo directory.
    public static func isValidName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard (1...64).contains(bytes.count) else { return false }
        for part in bytes.split(separator: 0x2F, omittingEmptySubsequences: false) {
            guard let first = part.first, first != 0x2E, first != 0x2D else { return false }
            let allowed = part.allSatisfy { b in
                (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || (b >= 0x30 && b <= 0x39) || b == 0x5F || b == 0x2D || b == 0x2B
            }
            guard allowed else { return false }
        }
        return true
    }

    public init(name: String, tzif data: Data) throws(ParseError) {
        self.name = name
        bytes = data
        let input = [UInt8](data)
        guard input.count <= Self.maximumSize else { throw .malformed("larger than \(Self.maximumSize) bytes") }
        var reader = Reader(input)
        var header = try reader.header()
        var timeSize = 4
        if header.version >= 2 {
            // Skip the 32-bit block; the 64-bit one follows with a header of its own.
            try reader.skip(header.blockSize(timeSize: 4))
            header = try reader.header()
            timeSize = 8
        }
        var transitions: [Int64] = []
        transitions.reserveCapacity(header.timeCount)
        for _ in 0..<header.timeCount {
            let time = timeSize == 8 ? try reader.int64() : Int64(try reader.int32())
            if let last = transitions.last, time <= last { throw .malformed("transition times out of order") }
            transitions.append(time)
        }
        var transitionTypes: [UInt8] = []
        for _ in 0..<header.timeCount {
            let index = try reader.byte()
            guard Int(index) < header.typeCount else { throw .malformed("a transition names a local time type that does not exist") }
            transitionTypes.append(index)
        }
        var raw: [(Int32, Bool, Int)] = []
        for _ in 0..<header.typeCount {
            let offset = try reader.int32()
            let isDST = try reader.byte()
            let index = Int(try reader.byte())
            // RFC 8536 3.2: offsets within (-25h, 26h), never -2^31.
            guard offset > -89_999, offset < 93_600, isDST <= 1, index < header.charCount else {
                throw .malformed("a local time type is out of range")
            }
            raw.append((offset, isDST == 1, index))
        }
        let characters = Array(try reader.bytes(header.charCount))
        let types = raw.map { offset, isDST, index in
            let end = characters[index...].firstIndex(of: 0) ?? characters.endIndex
            return LocalType(offset: offset, isDST: isDST, abbreviation: String(decoding: characters[index..<end], as: UTF8.self))
        }
        try reader.skip(header.leapCount * (timeSize + 4) + header.standardCount + header.utcCount)
        var rule: PosixRule?
        if header.version >= 2 {
            guard try reader.byte() == 0x0A else { throw .malformed("no footer") }
            let footer = try reader.untilNewline()
            if !footer.isEmpty {
                guard let parsed = PosixRule(String(decoding: footer, as: UTF8.self)) else {
                    throw .malformed("the footer's TZ rule \"\(String(decoding: footer.prefix(60), as: UTF8.self))\" is not a POSIX TZ string")
                }
                rule = parsed
            }
        }
        guard !types.isEmpty || rule != nil else { throw .malformed("no local time type") }
        self.transitions = transitions
        self.transitionTypes = transitionTypes
        self.types = types
        self.rule = rule
    }

    /// The local time type in force at `instant` (seconds since the epoch).
    public func localType(at instant: Int64) -> LocalType {
        // About ±31,000 years: the calendar arithmetic below stays far from overflow.
        let instant = Swift.min(Swift.max(instant, -1_000_000_000_000), 1_000_000_000_000)
        if let last = transitions.last, instant >= last, let rule { return rule.localType(at: instant) }
        if transitions.isEmpty, let rule { return rule.localType(at: instant) }
        guard let first = transitions.first, instant >= first else { return types.first ?? LocalType(offset: 0, isDST: false, abbreviation: "UTC") }
        // The last transition at or before `instant`.
        var low = 0
        var high = transitions.count - 1
        while low < high {
            let middle = (low + high + 1) / 2
            if transitions[middle] <= instant { low = middle } else { high = middle - 1 }
        }
        return types[Int(transitionTypes[low])]
    }

    public func localType(at date: Date) -> LocalType { localType(at: Int64(saturating: date.timeIntervalSince1970.rounded(.down))) }

    /// Seconds east of UTC at `instant`.
    public func offset(at instant: Int64) -> Int64 { Int64(localType(at: instant).offset) }

    /// The instants whose local wall time is `wall` (seconds since the epoch of a clock that
    /// reads local time): none in a gap (clocks jumped past it), two in an overlap (clocks went
    /// back), earliest first.
    public func instants(ofWallTime wall: Int64) -> [Int64] {
        var candidates: Set<Int64> = []
        for probe in [wall - 50_400, wall, wall + 50_400] { candidates.insert(offset(at: probe)) }
        return candidates.map { wall - $0 }.filter { wall - offset(at: $0) == $0 }.sorted()
    }

    /// The first instant whose local wall time is `wall` or later: `wall` itself when it occurs
    /// (the earlier of two in an overlap), else the moment clocks jumped past it.
    public func firstInstant(atOrAfterWallTime wall: Int64) -> Int64 {
        if let first = instants(ofWallTime: wall).first { return first }
        // In a gap: the wall time t + offset(t) crosses `wall` at the transition. Search the
        // instants between the two offsets' readings for the first whose wall time passed it.
        var low = wall - 93_600
        var high = wall + 90_000
        while low < high {
            let middle = low + (high - low) / 2
            if middle + offset(at: middle) >= wall { high = middle } else { low = middle + 1 }
        }
        return low
    }

    public var description: String { name }

    public static func == (lhs: ZoneInfo, rhs: ZoneInfo) -> Bool { lhs.name == rhs.name && lhs.bytes == rhs.bytes }
    public func hash(into hasher: inout Hasher) {
        hasher.combine(name)
        hasher.combine(bytes)
    }

    private enum CodingKeys: String, CodingKey { case name, bytes }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let name = try container.decode(String.self, forKey: .name)
        let bytes = try container.decode(Data.self, forKey: .bytes)
        if bytes.isEmpty {
            self.init(utcNamed: name)
        } else {
            do { try self.init(name: name, tzif: bytes) } catch {
                throw DecodingError.dataCorruptedError(forKey: .bytes, in: container, debugDescription: error.description)
            }
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(name, forKey: .name)
        try container.encode(bytes, forKey: .bytes)
    }
}

// MARK: - Reading the file

private struct Reader {
    struct Header {
        var version: Int
        var utcCount, standardCount, leapCount, timeCount, typeCount, charCount: Int

        func blockSize(timeSize: Int) -> Int {
            timeCount * timeSize + timeCount + typeCount * 6 + charCount + leapCount * (timeSize + 4) + standardCount + utcCount
        }
    }

    let input: [UInt8]
    var position = 0

    init(_ input: [UInt8]) { self.input = input }

    mutating func bytes(_ count: Int) throws(ZoneInfo.ParseError) -> ArraySlice<UInt8> {
        guard count >= 0, count <= input.count - position else { throw .malformed("cut short") }
        defer { position += count }
        return input[position..<position + count]
    }

    mutating func skip(_ count: Int) throws(ZoneInfo.ParseError) { _ = try bytes(count) }

    mutating func byte() throws(ZoneInfo.ParseError) -> UInt8 { try bytes(1).first! }

    mutating func int32() throws(ZoneInfo.ParseError) -> Int32 {
        Int32(bitPattern: try bytes(4).reduce(UInt32(0)) { $0 << 8 | UInt32($1) })
    }

    mutating func int64() throws(ZoneInfo.ParseError) -> Int64 {
        Int64(bitPattern: try bytes(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) })
    }

    mutating func untilNewline() throws(ZoneInfo.ParseError) -> ArraySlice<UInt8> {
        guard let end = input[position...].prefix(256).firstIndex(of: 0x0A) else { throw .malformed("the footer has no end") }
        defer { position = end + 1 }
        return input[position..<end]
    }

    mutating func header() throws(ZoneInfo.ParseError) -> Header {
        guard Array(try bytes(4)) == Array("TZif".utf8) else { throw .malformed("no TZif magic") }
        let versionByte = try byte()
        let version: Int
        switch versionByte {
        case 0: version = 1
        case 0x32...0x34: version = Int(versionByte - 0x30)
        default: throw .malformed("unknown version")
        }
        try skip(15)
        var counts: [Int] = []
        for _ in 0..<6 {
            let count = try int32()
            // Counts are bounded by the file itself (each takes at least a byte); this keeps
            // the arithmetic on them far from overflow.
            guard count >= 0, Int(count) <= ZoneInfo.maximumSize else { throw .malformed("a count is out of range") }
            counts.append(Int(count))
        }
        let header = Header(
            version: version, utcCount: counts[0], standardCount: counts[1], leapCount: counts[2], timeCount: counts[3],
            typeCount: counts[4], charCount: counts[5])
        guard header.typeCount <= 256, header.utcCount == 0 || header.utcCount == header.typeCount,
            header.standardCount == 0 || header.standardCount == header.typeCount,
            header.timeCount == 0 || header.typeCount > 0
        else { throw .malformed("its counts do not agree") }
        return header
    }
}

// MARK: - POSIX TZ rules (the footer)

/// A POSIX TZ string as TZif footers hold it: `CET-1CEST,M3.5.0,M10.5.0/3`.
struct PosixRule: Hashable, Sendable {
    enum Day: Hashable, Sendable {
        /// `Jn`: day 1 to 365, February 29 never counted.
        case julian(Int)
        /// `n`: day 0 to 365, February 29 counted.
        case zeroBased(Int)
        /// `Mm.w.d`: weekday d (0 Sunday) of week w (5: the last) of month m.
        case monthWeek(month: Int, week: Int, weekday: Int)
    }

    let standard: ZoneInfo.LocalType
    let daylight: ZoneInfo.LocalType?
    /// When daylight time starts (in standard time) and ends (in daylight time): the day, and
    /// seconds after that day's midnight.
    let start: (day: Day, time: Int64)?
    let end: (day: Day, time: Int64)?

    static func == (lhs: PosixRule, rhs: PosixRule) -> Bool {
        lhs.standard == rhs.standard && lhs.daylight == rhs.daylight && lhs.start?.day == rhs.start?.day
            && lhs.start?.time == rhs.start?.time && lhs.end?.day == rhs.end?.day && lhs.end?.time == rhs.end?.time
    }

    func hash(into hasher: inout Hasher) {
        hasher.combine(standard)
        hasher.combine(daylight)
    }

    init?(_ text: String) {
        var scanner = RuleScanner(Array(text.utf8))
        guard let standardName = scanner.name(), let standardOffset = scanner.offset() else { return nil }
        standard = ZoneInfo.LocalType(offset: Int32(-standardOffset), isDST: false, abbreviation: standardName)
        guard !scanner.atEnd else {
            daylight = nil
            start = nil
            end = nil
            return
        }
        guard let daylightName = scanner.name() else { return nil }
        var daylightOffset = standardOffset - 3600
        if !scanner.atEnd, scanner.peek != 0x2C {
            guard let given = scanner.offset() else { return nil }
            daylightOffset = given
        }
        daylight = ZoneInfo.LocalType(offset: Int32(-daylightOffset), isDST: true, abbreviation: daylightName)
        // Without dates, US rules apply (POSIX leaves them to the implementation; glibc's choice).
        guard scanner.take(0x2C) else {
            guard scanner.atEnd else { return nil }
            start = (.monthWeek(month: 3, week: 2, weekday: 0), 7200)
            end = (.monthWeek(month: 11, week: 1, weekday: 0), 7200)
            return
        }
        guard let startDay = scanner.day() else { return nil }
        let startTime = scanner.take(0x2F) ? scanner.offset(hoursUpTo: 167) : 7200
        guard let startTime, scanner.take(0x2C), let endDay = scanner.day() else { return nil }
        let endTime = scanner.take(0x2F) ? scanner.offset(hoursUpTo: 167) : 7200
        guard let endTime, scanner.atEnd else { return nil }
        start = (startDay, startTime)
        end = (endDay, endTime)
    }

    func localType(at instant: Int64) -> ZoneInfo.LocalType {
        guard let daylight, let start, let end else { return standard }
        let year = CivilDate(days: (instant + Int64(standard.offset)).floorDivided(by: 86_400)).year
        let startsAt = Self.instant(start.day, start.time, year: year) - Int64(standard.offset)
        let endsAt = Self.instant(end.day, end.time, year: year) - Int64(daylight.offset)
        let inDaylight = startsAt < endsAt ? (instant >= startsAt && instant < endsAt) : !(instant >= endsAt && instant < startsAt)
        return inDaylight ? daylight : standard
    }

    /// Local seconds since the epoch of `day` of `year` plus `time`.
    static func instant(_ day: Day, _ time: Int64, year: Int64) -> Int64 {
        let january1 = CivilDate.days(year: year, month: 1, day: 1)
        let dayNumber: Int64
        switch day {
        case .julian(let n):
            dayNumber = january1 + Int64(n - 1) + (CivilDate.isLeap(year) && n >= 60 ? 1 : 0)
        case .zeroBased(let n):
            dayNumber = january1 + Int64(n)
        case .monthWeek(let month, let week, let weekday):
            let first = CivilDate.days(year: year, month: Int64(month), day: 1)
            let firstWeekday = CivilDate.weekday(days: first)
            var dayOfMonth = 1 + (Int64(weekday) - firstWeekday + 7) % 7 + 7 * Int64(week - 1)
            let length = CivilDate.daysInMonth(year: year, month: Int64(month))
            while dayOfMonth > length { dayOfMonth -= 7 }
            dayNumber = first + dayOfMonth - 1
        }
        return dayNumber * 86_400 + time
    }
}

private struct RuleScanner {
    let bytes: [UInt8]
    var index = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var atEnd: Bool { index >= bytes.count }
    var peek: UInt8? { atEnd ? nil : bytes[index] }

    mutating func take(_ byte: UInt8) -> Bool {
        guard peek == byte else { return false }
        index += 1
        return true
    }

    /// `CET` (3 or more letters) or `<+0330>` (3 or more of letters, digits, + and -).
    mutating func name() -> String? {
        let begin = index
        if take(0x3C) {
            while let b = peek, b != 0x3E, isAlphanumeric(b) || b == 0x2B || b == 0x2D { index += 1 }
            let name = bytes[(begin + 1)..<index]
            guard take(0x3E), name.count >= 3 else { return nil }
            return String(decoding: name, as: UTF8.self)
        }
        while let b = peek, (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) { index += 1 }
        guard index - begin >= 3 else { return nil }
        return String(decoding: bytes[begin..<index], as: UTF8.self)
    }

    private func isAlphanumeric(_ b: UInt8) -> Bool { (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || (b >= 0x30 && b <= 0x39) }

    mutating func number(max: Int64) -> Int64? {
        var value: Int64 = 0
        var digits = 0
        while let b = peek, b >= 0x30, b <= 0x39 {
            value = value * 10 + Int64(b - 0x30)
            digits += 1
            index += 1
            guard value <= max, digits <= 3 else { return nil }
        }
        return digits == 0 ? nil : value
    }

    /// `[+-]hh[:mm[:ss]]` in seconds (west of UTC positive, as POSIX writes offsets).
    mutating func offset(hoursUpTo maximumHours: Int64 = 24) -> Int64? {
        var sign: Int64 = 1
        if take(0x2D) { sign = -1 } else { _ = take(0x2B) }
        guard let hours = number(max: maximumHours) else { return nil }
        var seconds = hours * 3600
        if take(0x3A) {
            guard let minutes = number(max: 59) else { return nil }
            seconds += minutes * 60
            if take(0x3A) {
                guard let secs = number(max: 59) else { return nil }
                seconds += secs
            }
        }
        return sign * seconds
    }

    mutating func day() -> PosixRule.Day? {
        if take(0x4A) {
            guard let n = number(max: 365), n >= 1 else { return nil }
            return .julian(Int(n))
        }
        if take(0x4D) {
            guard let month = number(max: 12), month >= 1, take(0x2E), let week = number(max: 5), week >= 1, take(0x2E),
                let weekday = number(max: 6)
            else { return nil }
            return .monthWeek(month: Int(month), week: Int(week), weekday: Int(weekday))
        }
        guard let n = number(max: 365) else { return nil }
        return .zeroBased(Int(n))
    }
}

// MARK: - Calendar arithmetic

/// Proleptic Gregorian dates as days since 1970-01-01 (Howard Hinnant's algorithms), in Int64 so
/// no date Stet can be given overflows.
public struct CivilDate: Hashable, Sendable {
    public var year: Int64
    public var month: Int64
    public var day: Int64

    public init(year: Int64, month: Int64, day: Int64) {
        self.year = year
        self.month = month
        self.day = day
    }

    public init(days: Int64) {
        let z = days + 719_468
        let era = z.floorDivided(by: 146_097)
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        day = dayOfYear - (153 * mp + 2) / 5 + 1
        month = mp < 10 ? mp + 3 : mp - 9
        year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
    }

    public var days: Int64 { Self.days(year: year, month: month, day: day) }

    public static func days(year: Int64, month: Int64, day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = y.floorDivided(by: 400)
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    /// 0 Sunday … 6 Saturday.
    public static func weekday(days: Int64) -> Int64 { (days + 4).floorModulo(7) }

    public static func isLeap(_ year: Int64) -> Bool { year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) }

    public static func daysInMonth(year: Int64, month: Int64) -> Int64 {
        switch month {
        case 2: isLeap(year) ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }
}

extension Int64 {
    func floorDivided(by divisor: Int64) -> Int64 {
        let (quotient, remainder) = quotientAndRemainder(dividingBy: divisor)
        return remainder < 0 ? quotient - 1 : quotient
    }

    func floorModulo(_ divisor: Int64) -> Int64 {
        let remainder = self % divisor
        return remainder < 0 ? remainder + divisor : remainder
    }
}
