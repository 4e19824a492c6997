import ArgumentParser
import Foundation
import StetCore
import StetFleet

/// How a command reaches the fleet's etcd (`--cluster`), shared by `run`, `apply`, `status` and
/// `plan`. Without `--cluster` a command works on this host alone.
struct ClusterOptions: ParsableArguments {
    @Option(help: ArgumentHelp(
        "The fleet's etcd endpoints, comma-separated (http(s)://HOST:PORT,…): work with the fleet instead of this host alone.",
        valueName: "urls"))
    var cluster: String?

    @Option(name: .customLong("cluster-name"), help: ArgumentHelp(
        "The fleet's name: its keys live under /stet/NAME/ in etcd.", valueName: "name"))
    var clusterName = "stet"

    @Option(name: .customLong("etcd-ca"), help: ArgumentHelp("CA certificate (PEM) that signed etcd's, for https endpoints.", valueName: "file"))
    var etcdCA: String?

    @Option(name: .customLong("etcd-cert"), help: ArgumentHelp("Client certificate (PEM) for etcd's --client-cert-auth.", valueName: "file"))
    var etcdCert: String?

    @Option(name: .customLong("etcd-key"), help: ArgumentHelp("The client certificate's private key (PEM).", valueName: "file"))
    var etcdKey: String?

    func validate() throws {
        if let cluster { _ = try endpoints(cluster) }
        do {
            _ = try FleetKeyspace(cluster: clusterName)
        } catch {
            throw ValidationError("--cluster-name: \(error.description)")
        }
        let tls = [etcdCA, etcdCert, etcdKey].compactMap { $0 }
        if !tls.isEmpty, tls.count != 3 { throw ValidationError("--etcd-ca, --etcd-cert and --etcd-key go together") }
    }

    private func endpoints(_ text: String) throws -> [String] {
        let list = text.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }
        guard (1...16).contains(list.count), list.allSatisfy({ !$0.isEmpty }) else {
            throw ValidationError("--cluster \(text.prefix(80)): expected 1 to 16 etcd endpoints, comma-separated")
        }
        return list
    }

    func keyspace() throws -> FleetKeyspace {
        do {
            return try FleetKeyspace(cluster: clusterName)
        } catch {
            throw CommandFailure(status: ExitStatus.error, message: "--cluster-name: \(error.description)")
        }
    }

    /// The etcd client, or nil without `--cluster`. `timeout` bounds each request.
    func client(timeout: Double = 2) throws -> EtcdClient? {
        guard let cluster else { return nil }
        var configuration = EtcdClient.Configuration(endpoints: try endpoints(cluster))
        if let etcdCA, let etcdCert, let etcdKey {
            configuration.tls = EtcdClient.TLS(caFile: etcdCA, certificateFile: etcdCert, keyFile: etcdKey)
        }
        configuration.requestTimeout = timeout
        do {
            return try EtcdClient(configuration)
        } catch {
            throw CommandFailure(status: ExitStatus.error, message: error.description)
        }
    }
}
