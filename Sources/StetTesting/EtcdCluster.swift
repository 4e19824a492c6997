import Foundation

/// A real etcd cluster on 127.0.0.1 for tests: `count` members, client ports `basePort`,
/// `basePort + 2`, … and peer ports one above each. Members are stopped by `stop()` (and when
/// the cluster goes).
public final class EtcdCluster: @unchecked Sendable {
    public let folder = TemporaryDirectory("stet-etcd")
    public private(set) var members: [BackgroundProcess?] = []
    public let clientPorts: [Int]
    public let arguments: [[String]]

    public init(members count: Int, basePort: Int) throws {
        clientPorts = (0..<count).map { basePort + 2 * $0 }
        let peers = (0..<count).map { "m\($0)=http://127.0.0.1:\(basePort + 2 * $0 + 1)" }.joined(separator: ",")
        arguments = (0..<count).map { index in
            let client = "http://127.0.0.1:\(basePort + 2 * index)"
            let peer = "http://127.0.0.1:\(basePort + 2 * index + 1)"
            return ["--name", "m\(index)", "--data-dir", "data-m\(index)", "--listen-peer-urls", peer,
                    "--initial-advertise-peer-urls", peer, "--listen-client-urls", client, "--advertise-client-urls", client,
                    "--initial-cluster", peers, "--initial-cluster-state", "new", "--initial-cluster-token", "stet-test"]
        }
        for index in 0..<count { members.append(try start(index)) }
    }

    public var endpoints: [String] { clientPorts.map { "http://127.0.0.1:\($0)" } }

    public func start(_ index: Int) throws -> BackgroundProcess {
        try BackgroundProcess(try which("etcd"), arguments[index], in: folder.path)
    }

    public func kill(_ index: Int) {
        members[index]?.stop(SIGKILL)
        members[index] = nil
    }

    public func stop() {
        for index in members.indices { members[index]?.stop() }
        members = []
    }

    /// Starts every member that is not running (after `kill` or `stop`), with its data.
    public func restart() throws {
        if members.isEmpty { members = Array(repeating: nil, count: arguments.count) }
        for index in members.indices where members[index] == nil { members[index] = try start(index) }
    }

    deinit { stop() }

    /// The index of the member that leads the cluster now, if one does and answers.
    public func leader() throws -> Int? {
        // `simple`: endpoint, member ID, version, database size, is leader, …
        let status = try etcdctl("endpoint", "status", "-w", "simple")
        for line in status.stdout.split(separator: "\n") {
            let fields = line.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            guard fields.count > 4, fields[4] == "true" else { continue }
            return endpoints.firstIndex(of: fields[0])
        }
        return nil
    }

    /// etcdctl against this cluster.
    public func etcdctl(_ arguments: String...) throws -> ProcessOutput {
        try StetTesting.run("etcdctl", ["--endpoints", endpoints.joined(separator: ",")] + arguments, environment: ["ETCDCTL_API": "3"])
    }
}

