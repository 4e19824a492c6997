import Foundation
import StetCore
import StetProviders
import StetState
import StetTesting
import Testing

/// One meaning of a replica's health for the loop and for plan, apply and status: the check's
/// inputs and the counting (`ReplicaHealth`).
@Suite struct ReplicaHealthTests {
    static let started = Date(timeIntervalSince1970: 1_790_000_000)
    static let settings = Service.Health(
        check: .exec(command: ["true"]), interval: .seconds(5), timeout: .seconds(1), failureThreshold: 3, startPeriod: .seconds(10))
    static let health = ReplicaHealth(settings: settings, port: nil, environment: [:])

    struct Row: Sendable, CustomTestStringConvertible {
        let age: Double
        let failures: Int
        let checked: Bool
        let expected: ObservedReplica.Health
        var testDescription: String { "\(failures) failures\(checked ? "" : ", never checked"), \(age) s after the start" }
    }

    @Test(arguments: [
        Row(age: 0, failures: 5, checked: true, expected: .starting),
        Row(age: 9.9, failures: 0, checked: true, expected: .starting),
        Row(age: 10, failures: 0, checked: false, expected: .starting),
        Row(age: 10, failures: 0, checked: true, expected: .healthy),
        Row(age: 60, failures: 2, checked: true, expected: .starting),
        Row(age: 60, failures: 3, checked: true, expected: .unhealthy),
        Row(age: 60, failures: 4, checked: true, expected: .unhealthy),
    ])
    func stateFollowsTheCountTheThresholdAndTheStartPeriod(_ row: Row) {
        #expect(Self.health.state(failures: row.failures, checked: row.checked, startedAt: Self.started,
                                  now: Self.started.addingTimeInterval(row.age)) == row.expected)
    }

    @Test func failuresCountInARowAndStopAtWhatARecordHolds() {
        #expect(ReplicaHealth.failures(after: true, following: 7) == 0)
        #expect(ReplicaHealth.failures(after: false, following: 0) == 1)
        #expect(ReplicaHealth.failures(after: false, following: 2) == 3)
        #expect(ReplicaHealth.failures(after: false, following: ReplicaProvider.maximumCount) == ReplicaProvider.maximumCount)
        #expect(ReplicaHealth.failures(after: false, following: Int.max) == ReplicaProvider.maximumCount)
        #expect(Self.health.reachesThreshold(from: 2, to: 3))
        #expect(!Self.health.reachesThreshold(from: 3, to: 4))
        #expect(!Self.health.reachesThreshold(from: 1, to: 2))
    }

    @Test func checksAreDueAfterTheStartPeriodThenEveryInterval() {
        let now = Self.started.addingTimeInterval(1)
        #expect(Self.health.firstCheck(startedAt: Self.started, now: now) == Self.started.addingTimeInterval(10))
        #expect(Self.health.firstCheck(startedAt: Self.started, now: Self.started.addingTimeInterval(30)) == Self.started.addingTimeInterval(30))
        #expect(Self.health.nextCheck(after: Self.started, now: now) == Self.started.addingTimeInterval(5))
    }

    /// The check runs with the environment the replica runs with: Stet's base (and nothing else
    /// of Stet's), the service's `env`, its port and its name and index.
    @Test func theCheckRunsWithTheReplicasEnvironment() throws {
        let state = TemporaryDirectory("stet-health")
        let provider = ReplicaProvider(
            store: FileStateStore(root: state.path), baseDirectory: state.path,
            environment: ["PATH": "/usr/bin:/bin", "STET_KEY": "private/ci.key"])
        let service = Service(
            metadata: Metadata(name: "web"), replicas: 2, run: Service.Run(command: ["serve"], env: ["FOO": "bar"], portsStart: 9000),
            health: Service.Health(check: .exec(command: ["sh", "-c", #"test "$FOO" = bar && test "$PORT" = 9001 && test "$STET_REPLICA" = 1"#])))
        let health = try #require(provider.health(of: service, index: 1, port: 9001))
        #expect(health.environment == ["PATH": "/usr/bin:/bin", "FOO": "bar", "PORT": "9001", "STET_SERVICE": "web", "STET_REPLICA": "1"])
        #expect(health.check().ok)
        var unchecked = service
        unchecked.health = nil
        #expect(provider.health(of: unchecked, index: 1, port: 9001) == nil)
    }
}
