import Foundation
import StetCore
import StetManifest
import StetTesting
import Testing

/// Time zones from the system's zoneinfo, cron schedules and maintenance windows, against an
/// injected clock. The zone rules are checked against `zdump`, which reads the same files with
/// glibc's code: every transition of 2026 to 2045 (past 2037 the files' footer rules apply).
@Suite struct WindowTests {
    static func zone(_ name: String) throws -> ZoneInfo {
        switch ZoneDirectory.load(name) {
        case .zone(let zone): return zone
        case .problem(let problem): throw TestFailure(problem)
        }
    }

    struct TestFailure: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// `Sun Mar 29 00:59:59 2026` as seconds since the epoch.
    static func epoch(_ fields: ArraySlice<Substring>) -> Int64? {
        let parts = Array(fields)
        guard parts.count == 5, let month = months.firstIndex(of: String(parts[1])), let day = Int64(parts[2]),
            let year = Int64(parts[4])
        else { return nil }
        let time = parts[3].split(separator: ":").compactMap { Int64($0) }
        guard time.count == 3 else { return nil }
        return CivilDate.days(year: year, month: Int64(month + 1), day: day) * 86_400 + time[0] * 3600 + time[1] * 60 + time[2]
    }

    @Test(arguments: ["Europe/Berlin", "America/New_York", "Australia/Sydney", "Australia/Lord_Howe", "Asia/Kolkata",
                      "America/Sao_Paulo", "Pacific/Chatham", "America/Santiago"])
    func offsetsAgreeWithZdump(_ name: String) throws {
        let zone = try Self.zone(name)
        let result = try run("zdump", ["-v", "-c", "2026,2046", name])
        #expect(result.status == 0)
        var checked = 0
        for line in result.stdout.split(separator: "\n") {
            // NAME  Www Mmm dd hh:mm:ss yyyy UT = Www Mmm dd hh:mm:ss yyyy ABBR isdst=D gmtoff=N
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count == 16, fields[6] == "UT", let instant = Self.epoch(fields[1...5]),
                let gmtoff = fields[15].split(separator: "=").last.flatMap({ Int32($0) })
            else { continue }
            let local = zone.localType(at: instant)
            #expect(local.offset == gmtoff, "\(name) at \(instant): \(line)")
            #expect(local.abbreviation == String(fields[13]), "\(name) at \(instant): \(line)")
            #expect(local.isDST == (fields[14] == "isdst=1"), "\(name) at \(instant): \(line)")
            checked += 1
        }
        // Zones without daylight time have no transitions in these years.
        if !["Asia/Kolkata", "America/Sao_Paulo"].contains(name) { #expect(checked >= 40, "\(name): \(checked) lines of zdump") }
    }

    @Test func zoneNamesThatCouldLeaveTheDirectoryAreRefused() {
        for name in ["../etc/passwd", "/etc/localtime", "Europe/../../etc/shadow", "", ".hidden", "Europe//Berlin", "a b",
                     String(repeating: "A", count: 65), "-rf"] {
            guard case .problem(let problem) = ZoneDirectory.load(name) else {
                Issue.record("\(name) was accepted")
                continue
            }
            #expect(problem.contains("expected an IANA time zone name"), "\(problem)")
        }
        guard case .problem(let missing) = ZoneDirectory.load("Mars/Olympus_Mons") else {
            Issue.record("a zone that does not exist was accepted")
            return
        }
        #expect(missing.contains("no time zone Mars/Olympus_Mons"))
    }

    @Test func damagedZoneFilesAreRefusedWithoutTrapping() throws {
        let berlin = try Self.zone("Europe/Berlin")
        let bytes = [UInt8](berlin.bytes)
        var refused = 0
        for cut in stride(from: 0, to: bytes.count, by: 7) {
            do { _ = try ZoneInfo(name: "cut", tzif: Data(bytes[..<cut])) } catch { refused += 1 }
        }
        #expect(refused == (bytes.count + 6) / 7)
        var generator = SplitMix(seed: 17)
        for _ in 0..<2000 {
            var changed = bytes
            for _ in 0..<3 { changed[Int(generator.next() % UInt64(changed.count))] = UInt8(truncatingIfNeeded: generator.next()) }
            if let zone = try? ZoneInfo(name: "changed", tzif: Data(changed)) {
                for instant in [Int64.min, -1, 0, 1_790_000_000, 4_000_000_000, Int64.max] { _ = zone.localType(at: instant) }
            }
        }
    }

    // MARK: - Cron

    static func utc(_ text: String) -> Int64 {
        let date = ISO8601DateFormatter().date(from: text)!
        return Int64(date.timeIntervalSince1970)
    }

    static func next(_ schedule: String, after: String, in zone: ZoneInfo = .utc) throws -> Int64? {
        try CronSchedule(parsing: schedule).next(after: utc(after), in: zone)
    }

    @Test func cronFieldsListsRangesStepsAndNames() throws {
        #expect(try Self.next("*/15 * * * *", after: "2026-12-01T10:07:00Z") == Self.utc("2026-12-01T10:15:00Z"))
        #expect(try Self.next("0 2 * * *", after: "2026-12-01T02:00:00Z") == Self.utc("2026-12-02T02:00:00Z"))
        #expect(try Self.next("30 4 * * mon-fri", after: "2026-12-04T05:00:00Z") == Self.utc("2026-12-07T04:30:00Z"))
        #expect(try Self.next("0 0 1 jan *", after: "2026-06-01T00:00:00Z") == Self.utc("2027-01-01T00:00:00Z"))
        #expect(try Self.next("0 12 * * 7", after: "2026-12-01T00:00:00Z") == Self.utc("2026-12-06T12:00:00Z"))
        #expect(try Self.next("@daily", after: "2026-12-01T00:00:00Z") == Self.utc("2026-12-02T00:00:00Z"))
        #expect(try Self.next("0-30/10 9 * * *", after: "2026-12-01T09:20:00Z") == Self.utc("2026-12-01T09:30:00Z"))
        // Both day fields restricted: either matches (the 13th, or a Friday).
        #expect(try Self.next("0 0 13 * fri", after: "2026-12-01T00:00:00Z") == Self.utc("2026-12-04T00:00:00Z"))
        // February 29 comes back in 2028.
        #expect(try Self.next("0 0 29 2 *", after: "2026-03-01T00:00:00Z") == Self.utc("2028-02-29T00:00:00Z"))
    }

    @Test func malformedSchedulesNameTheirField() {
        let cases = [
            ("61 * * * *", "minute"), ("* 24 * * *", "hour"), ("* * 0 * *", "day of month"), ("* * * 13 *", "month"),
            ("* * * * 8", "day of week"), ("*/0 * * * *", "minute: expected a step"), ("5-2 * * * *", "minute"),
            ("* * * *", "five fields"), ("0 0 31 2 *", "matches no day"), ("* * * foo *", "month"),
            (String(repeating: "1,", count: 150) + "1 * * * *", "at most 200"),
        ]
        for (text, expected) in cases {
            do {
                _ = try CronSchedule(parsing: text)
                Issue.record("\(text) was accepted")
            } catch {
                #expect(error.message.contains(expected), "\(text): \(error.message)")
            }
        }
    }

    @Test func daylightSavingChangesInARealZone() throws {
        let berlin = try Self.zone("Europe/Berlin")
        // 2026-03-29: 02:00 CET becomes 03:00 CEST, at 01:00 UTC. 02:30 does not exist: the
        // schedule fires when the clock jumps past it, once.
        #expect(try Self.next("30 2 * * *", after: "2026-03-28T12:00:00Z", in: berlin) == Self.utc("2026-03-29T01:00:00Z"))
        #expect(try Self.next("*/20 2 * * *", after: "2026-03-28T12:00:00Z", in: berlin) == Self.utc("2026-03-29T01:00:00Z"))
        #expect(try Self.next("*/20 2 * * *", after: "2026-03-29T01:00:00Z", in: berlin) == Self.utc("2026-03-30T00:00:00Z"))
        // 2026-10-25: 03:00 CEST becomes 02:00 CET, at 01:00 UTC. 02:30 happens twice; it
        // starts once, at the first.
        #expect(try Self.next("30 2 * * *", after: "2026-10-24T12:00:00Z", in: berlin) == Self.utc("2026-10-25T00:30:00Z"))
        #expect(try Self.next("30 2 * * *", after: "2026-10-25T00:30:00Z", in: berlin) == Self.utc("2026-10-26T01:30:00Z"))
        // A window at 02:00 for 2h on the spring day closes at 04:00 CEST, an hour of wall time.
        let window = MaintenanceWindow(
            metadata: Metadata(name: "nightly"), schedule: try CronSchedule(parsing: "0 2 * * *"), duration: .seconds(7200),
            zone: berlin)
        let spring = window.openSpan(at: Date(timeIntervalSince1970: Double(Self.utc("2026-03-29T01:30:00Z"))))
        #expect(spring?.start == Date(timeIntervalSince1970: Double(Self.utc("2026-03-29T01:00:00Z"))))
        #expect(spring?.end == Date(timeIntervalSince1970: Double(Self.utc("2026-03-29T03:00:00Z"))))
        #expect(window.describe(spring!.end, from: spring!.start) == "05:00 CEST")
    }

    @Test func aWindowSpanningMidnight() throws {
        let window = MaintenanceWindow(
            metadata: Metadata(name: "late"), schedule: try CronSchedule(parsing: "0 23 * * *"), duration: .seconds(3 * 3600))
        let at = { (text: String) in Date(timeIntervalSince1970: Double(Self.utc(text))) }
        let open = window.openSpan(at: at("2026-12-02T00:30:00Z"))
        #expect(open == DateInterval(start: at("2026-12-01T23:00:00Z"), end: at("2026-12-02T02:00:00Z")))
        #expect(window.openSpan(at: at("2026-12-02T02:00:00Z")) == nil)
        #expect(window.openSpan(at: at("2026-12-01T22:59:59Z")) == nil)
        #expect(window.nextSpan(after: at("2026-12-02T02:00:00Z"))?.start == at("2026-12-02T23:00:00Z"))
        #expect(window.nextSpan(after: at("2026-12-02T00:30:00Z"))?.start == at("2026-12-02T23:00:00Z"))
        // Openings that overlap are one span.
        let hourly = MaintenanceWindow(
            metadata: Metadata(name: "h"), schedule: try CronSchedule(parsing: "0 * * * *"), duration: .seconds(90 * 60))
        let always = try #require(hourly.openSpan(at: at("2026-12-02T05:10:00Z")))
        #expect(always.start == at("2026-12-02T04:00:00Z"))
        #expect(always.duration > 7 * 86_400)
    }
}
