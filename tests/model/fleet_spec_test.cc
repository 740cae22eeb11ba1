#include "model/fleet_spec.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "util/certificates.h"

namespace fleetwatch::model {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

FleetConfiguration MustParse(std::string_view text, ConfigFormat format = ConfigFormat::kYaml) {
  Result<FleetConfiguration> fleet = ParseFleetConfiguration(text, format);
  EXPECT_TRUE(fleet.ok()) << fleet.status().ToString() << "\n" << text;
  return fleet.ok() ? *fleet : FleetConfiguration();
}

std::string ErrorOf(std::string_view text, ConfigFormat format = ConfigFormat::kYaml) {
  Result<FleetConfiguration> fleet = ParseFleetConfiguration(text, format);
  EXPECT_FALSE(fleet.ok()) << "accepted:\n" << text;
  if (fleet.ok()) return "";
  Status status = fleet.status();
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  for (char c : status.message()) {
    EXPECT_TRUE(c >= 0x20 && c <= 0x7e) << "unprintable byte in: " << status.message();
  }
  return status.message();
}

// A fleet with one host given as `host` (a YAML flow value) and a default token.
std::string FleetWithHost(std::string_view host) {
  return "type: fleet\nname: gpus\nssh_config:\n  token: t0k3n\n  tls: false\n  hosts:\n    - " +
         std::string(host) + "\n";
}

TEST(ParseFleetConfiguration, ReadsObjectAndStringHostsWithDefaults) {
  FleetConfiguration fleet = MustParse(R"(
type: fleet
name: my-fleet
ssh_config:
  port: 11000
  token: default-token
  price: 2.5
  tls: false
  hosts:
    - hostname: 10.0.0.1
      port: 10998
      token: host-token
      price: 1.25
    - 10.0.0.2
    - hostname: GPU-1.Example.com
)");
  EXPECT_EQ(fleet.name, "my-fleet");
  ASSERT_EQ(fleet.hosts.size(), 3u);
  EXPECT_EQ(fleet.hosts[0].hostname, "10.0.0.1");
  EXPECT_EQ(fleet.hosts[0].port, 10998);
  EXPECT_EQ(fleet.hosts[0].token, "host-token");
  EXPECT_EQ(fleet.hosts[0].price, 1.25);
  EXPECT_EQ(fleet.hosts[1].hostname, "10.0.0.2");
  EXPECT_EQ(fleet.hosts[1].port, 11000);
  EXPECT_EQ(fleet.hosts[1].token, "default-token");
  EXPECT_EQ(fleet.hosts[1].price, 2.5);
  EXPECT_EQ(fleet.hosts[2].hostname, "gpu-1.example.com");  // DNS names are case-insensitive
}

TEST(ParseFleetConfiguration, DefaultsPortToTheAgentPortAndPriceToNone) {
  FleetConfiguration fleet = MustParse(FleetWithHost("{hostname: h1, token: x}"));
  ASSERT_EQ(fleet.hosts.size(), 1u);
  EXPECT_EQ(fleet.hosts[0].port, 10998);
  EXPECT_EQ(fleet.hosts[0].token, "x");
  EXPECT_EQ(fleet.hosts[0].price, std::nullopt);
}

TEST(ParseFleetConfiguration, AcceptsJson) {
  FleetConfiguration fleet = MustParse(
      R"({"type": "fleet", "name": "f", "ssh_config": {"hosts": [{"hostname": "::1", "token": "a", "tls": false}]}})",
      ConfigFormat::kJson);
  ASSERT_EQ(fleet.hosts.size(), 1u);
  EXPECT_EQ(fleet.hosts[0].hostname, "::1");
}

TEST(ParseFleetConfiguration, AcceptsIpLiteralsWithOrWithoutBrackets) {
  EXPECT_EQ(MustParse(FleetWithHost("\"[2001:DB8::1]\"")).hosts[0].hostname, "2001:db8::1");
  EXPECT_EQ(MustParse(FleetWithHost("\"2001:db8:0:0::1\"")).hosts[0].hostname, "2001:db8::1");
  EXPECT_EQ(MustParse(FleetWithHost("192.168.1.20")).hosts[0].hostname, "192.168.1.20");
  EXPECT_EQ(MustParse(FleetWithHost("localhost")).hosts[0].hostname, "localhost");
  EXPECT_EQ(MustParse(FleetWithHost(std::string(63, 'a') + ".b")).hosts[0].hostname.size(), 65u);
}

TEST(ParseFleetConfiguration, RefusesBadHostnames) {
  const std::string refused[] = {
      "\"host name\"",
      "\"a;b\"",
      "\"<script>\"",
      "\"10.0.0.1\\n\"",
      "\"\"",
      "\"-a.com\"",
      "\"a-.com\"",
      "\"a..b\"",
      "\"a.com.\"",
      "\"256.1.1.1\"",
      "\"1.2.3\"",
      "\"01.2.3.4\"",
      "\"[10.0.0.1]\"",
      "\"fe80::1%eth0\"",
      "\"a_b.com\"",
      "\"h\\0st\"",
      "\"http://h\"",
      "\"h:22\"",
      "\"ä.com\"",
      "\"" + std::string(64, 'a') + ".com\"",
      "\"" + std::string(254, 'a') + "\"",
  };
  for (const std::string& host : refused) {
    std::string message = ErrorOf(FleetWithHost(host));
    EXPECT_THAT(message, HasSubstr("ssh_config.hosts[0]: must be a DNS name or an IPv4 or IPv6"))
        << host;
    EXPECT_THAT(message, Not(HasSubstr("<script>"))) << host;
  }
  EXPECT_THAT(ErrorOf(FleetWithHost("{hostname: \"a b\"}")),
              HasSubstr("ssh_config.hosts[0].hostname: must be a DNS name"));
  EXPECT_THAT(ErrorOf(FleetWithHost("42")), HasSubstr("ssh_config.hosts[0]: must be a hostname"));
  EXPECT_THAT(ErrorOf(FleetWithHost("{port: 1}")),
              HasSubstr("ssh_config.hosts[0].hostname: is required"));
}

TEST(ParseFleetConfiguration, RefusesMissingOrBadTokens) {
  std::string no_default = "type: fleet\nname: f\nssh_config:\n  hosts:\n    - ";
  EXPECT_THAT(ErrorOf(no_default + "h1\n"), HasSubstr("ssh_config.hosts[0].token: is required"));
  EXPECT_THAT(ErrorOf(no_default + "{hostname: h1}\n"),
              HasSubstr("ssh_config.hosts[0].token: is required"));
  const std::string tokens[] = {"\"\"",
                                "\"a b\"",
                                "\"tab\\there\"",
                                "\"é\"",
                                "\"x\\0y\"",
                                "5",
                                "\"" + std::string(257, 'x') + "\""};
  for (const std::string& token : tokens) {
    std::string message = ErrorOf(no_default + "{hostname: h1, token: " + token + "}\n");
    EXPECT_THAT(message, HasSubstr("ssh_config.hosts[0].token: must be")) << token;
  }
  EXPECT_THAT(
      ErrorOf("type: fleet\nname: f\nssh_config:\n  token: \"s3cret value\"\n  hosts: [h]\n"),
      AllOf(HasSubstr("ssh_config.token: must be 1 to 256 printable ASCII"),
            Not(HasSubstr("s3cret"))));
}

TEST(ParseFleetConfiguration, RefusesDuplicateHosts) {
  EXPECT_THAT(ErrorOf(FleetWithHost("h1\n    - H1\n")),
              HasSubstr("ssh_config.hosts[1]: duplicate host h1 port 10998 (also "
                        "ssh_config.hosts[0])"));
  EXPECT_THAT(ErrorOf(FleetWithHost("\"::1\"\n    - \"[0:0::1]\"\n")), HasSubstr("duplicate host"));
  // The same host on another port is another agent.
  EXPECT_EQ(MustParse(FleetWithHost("h1\n    - {hostname: h1, port: 10999}\n")).hosts.size(), 2u);
}

TEST(ParseFleetConfiguration, RefusesSshOnlyKeys) {
  for (std::string key : {"user", "identity_file", "ssh_key", "proxy_jump"}) {
    std::string text = "type: fleet\nname: f\nssh_config:\n  " + key +
                       ": x\n  token: t\n"
                       "  hosts: [h]\n";
    EXPECT_THAT(
        ErrorOf(text),
        HasSubstr("ssh_config." + key +
                  ": is not supported: fleetwatch talks to the host's agent, not over SSH"));
    EXPECT_THAT(ErrorOf(FleetWithHost("{hostname: h, " + key + ": x}")),
                HasSubstr("ssh_config.hosts[0]." + key + ": is not supported"));
  }
}

TEST(ParseFleetConfiguration, RefusesBadPrices) {
  EXPECT_THAT(ErrorOf(FleetWithHost("{hostname: h, price: -1}")),
              HasSubstr("ssh_config.hosts[0].price: must be between 0 and 1000000"));
  EXPECT_THAT(ErrorOf(FleetWithHost("{hostname: h, price: 1000001}")),
              HasSubstr("ssh_config.hosts[0].price: must be between 0 and 1000000"));
  EXPECT_THAT(ErrorOf(FleetWithHost("{hostname: h, price: 1e308}")), HasSubstr("must be between"));
  EXPECT_THAT(ErrorOf(FleetWithHost("{hostname: h, price: .nan}")), HasSubstr("must be between"));
  EXPECT_THAT(ErrorOf(FleetWithHost("{hostname: h, price: .inf}")), HasSubstr("must be between"));
  EXPECT_THAT(ErrorOf(FleetWithHost("{hostname: h, price: \"2\"}")),
              HasSubstr("price: must be a number (got a string)"));
  EXPECT_THAT(ErrorOf(FleetWithHost("{hostname: h, price: true}")),
              HasSubstr("price: must be a number (got a boolean)"));
  EXPECT_THAT(
      ErrorOf("type: fleet\nname: f\nssh_config:\n  price: -0.5\n  token: t\n  hosts: [h]\n"),
      HasSubstr("ssh_config.price: must be between"));
  EXPECT_EQ(MustParse(FleetWithHost("{hostname: h, price: 0}")).hosts[0].price, 0.0);
}

TEST(ParseFleetConfiguration, RefusesBadStructure) {
  EXPECT_THAT(ErrorOf("name: f\nssh_config: {token: t, hosts: [h]}\n"),
              HasSubstr("type: is required"));
  EXPECT_THAT(ErrorOf("type: task\nname: f\nssh_config: {token: t, hosts: [h]}\n"),
              HasSubstr("type: must be fleet (got 'task')"));
  EXPECT_THAT(ErrorOf("type: fleet\nssh_config: {token: t, hosts: [h]}\n"),
              HasSubstr("name: is required"));
  EXPECT_THAT(ErrorOf("type: fleet\nname: Bad_Name\nssh_config: {token: t, hosts: [h]}\n"),
              HasSubstr("name: fleet name must start with"));
  EXPECT_THAT(ErrorOf("type: fleet\nname: f\n"), HasSubstr("ssh_config: is required"));
  EXPECT_THAT(ErrorOf("type: fleet\nname: f\nssh_config: {token: t}\n"),
              HasSubstr("ssh_config.hosts: is required"));
  EXPECT_THAT(ErrorOf("type: fleet\nname: f\nssh_config: {token: t, hosts: []}\n"),
              HasSubstr("ssh_config.hosts: must list at least one host"));
  EXPECT_THAT(ErrorOf("type: fleet\nname: f\nssh_config: {token: t, hosts: h}\n"),
              HasSubstr("ssh_config.hosts: must be a list"));
  EXPECT_THAT(ErrorOf("type: fleet\nname: f\nssh_config: {token: t, hosts: [h], port: 0}\n"),
              HasSubstr("ssh_config.port: must be between 1 and 65535"));
  EXPECT_THAT(ErrorOf(FleetWithHost("{hostname: h, port: 70000}")),
              HasSubstr("ssh_config.hosts[0].port: must be between 1 and 65535"));
  EXPECT_THAT(ErrorOf("type: fleet\nname: f\nnodes: 2\nssh_config: {token: t, hosts: [h]}\n"),
              HasSubstr("nodes: is not supported"));
  EXPECT_THAT(ErrorOf("type: fleet\nname: f\ncolor: red\nssh_config: {token: t, hosts: [h]}\n"),
              HasSubstr("unknown key 'color'"));
  EXPECT_THAT(ErrorOf(FleetWithHost("{hostname: h, extra: 1}")),
              HasSubstr("ssh_config.hosts[0]: unknown key 'extra'"));
  EXPECT_EQ(ErrorOf(""), "empty configuration");
  EXPECT_THAT(ErrorOf("{\"type\": \"fleet\"", ConfigFormat::kJson), HasSubstr("malformed JSON"));
}

TEST(ParseFleetConfiguration, RefusesTooManyHosts) {
  std::string text = "type: fleet\nname: f\nssh_config:\n  token: t\n  hosts:\n";
  for (int i = 0; i < 1001; ++i) text += "    - h" + std::to_string(i) + "\n";
  EXPECT_THAT(ErrorOf(text), HasSubstr("ssh_config.hosts: has too many hosts (at most 1000)"));
}

TEST(FleetConfigurationToJson, LeavesTokensOut) {
  FleetConfiguration fleet = MustParse(R"(
type: fleet
name: f
ssh_config:
  token: very-secret-token
  tls: false
  hosts:
    - hostname: 10.0.0.1
      price: 2.5
    - hostname: "[::1]"
      port: 7
      token: other-secret
)");
  std::string json = ToJson(fleet);
  EXPECT_EQ(json,
            R"({"name":"f","hosts":[{"hostname":"10.0.0.1","port":10998,"price":2.5,"tls":false},)"
            R"({"hostname":"::1","port":7,"tls":false}]})");
  EXPECT_THAT(json, Not(HasSubstr("secret")));
  EXPECT_THAT(json, Not(HasSubstr("token")));
}

// A fleet whose one host entry carries `keys` (YAML flow mapping entries) and a token.
std::string FleetWithHostKeys(std::string_view keys) {
  return "type: fleet\nname: f\nssh_config:\n  token: t\n  hosts:\n    - {hostname: h1, " +
         std::string(keys) + "}\n";
}

std::string Certificate() {
  SelfSignedRequest request;
  request.common_name = "ca";
  request.certificate_authority = true;
  Result<SelfSignedCertificate> made = CreateSelfSignedCertificate(request);
  EXPECT_TRUE(made.ok());
  return made.ok() ? made->certificate_pem : "";
}

// "|\n      <pem lines>" for a block scalar at host level.
std::string BlockScalar(const std::string& pem, std::string_view indent) {
  std::string out = "|\n";
  size_t at = 0;
  while (at < pem.size()) {
    size_t end = pem.find('\n', at);
    if (end == std::string::npos) end = pem.size();
    out += std::string(indent) + pem.substr(at, end - at) + "\n";
    at = end + 1;
  }
  return out;
}

TEST(FleetTls, AHostMustSayHowItIsReached) {
  std::string message = ErrorOf(FleetWithHostKeys("port: 1"));
  EXPECT_THAT(message, HasSubstr("ssh_config.hosts[0]: says nothing about TLS"));
  EXPECT_THAT(message, HasSubstr("fingerprint: sha256:"));
  EXPECT_THAT(message, HasSubstr("tls: false"));
  EXPECT_THAT(ErrorOf("type: fleet\nname: f\nssh_config:\n  token: t\n  hosts: [h1]\n"),
              HasSubstr("says nothing about TLS"));
}

TEST(FleetTls, PinnedFingerprintIsNormalized) {
  std::string colons;
  for (size_t i = 0; i < 64; i += 2) colons += (i ? ":" : "") + std::string(2, 'C');
  FleetConfiguration fleet = MustParse(FleetWithHostKeys("fingerprint: 'SHA256:" + colons + "'"));
  ASSERT_EQ(fleet.hosts.size(), 1u);
  EXPECT_TRUE(fleet.hosts[0].tls);
  EXPECT_EQ(fleet.hosts[0].fingerprint, "sha256:" + std::string(64, 'c'));
  EXPECT_EQ(fleet.hosts[0].ca_cert, "");
  EXPECT_THAT(ToJson(fleet), HasSubstr(R"("tls":true,"fingerprint":"sha256:cccc)"));
}

TEST(FleetTls, BadFingerprintsAreRefused) {
  for (const std::string& bad : {std::string("sha256:abc"), "md5:" + std::string(32, 'a'),
                                 "sha256:" + std::string(64, 'g'), std::string("yes")}) {
    EXPECT_THAT(ErrorOf(FleetWithHostKeys("fingerprint: '" + bad + "'")),
                HasSubstr("ssh_config.hosts[0].fingerprint: must be sha256:"))
        << bad;
  }
  EXPECT_THAT(ErrorOf(FleetWithHostKeys("fingerprint: 42")),
              HasSubstr("ssh_config.hosts[0].fingerprint: must be a string"));
}

TEST(FleetTls, CaCertificateIsCheckedAndMayBeADefault) {
  const std::string pem = Certificate();
  FleetConfiguration fleet = MustParse(
      "type: fleet\nname: f\nssh_config:\n  token: t\n  ca_cert: " + BlockScalar(pem, "    ") +
      "  hosts:\n    - h1\n    - hostname: h2\n      fingerprint: sha256:" + std::string(64, 'd') +
      "\n    - hostname: h3\n      tls: true\n");
  ASSERT_EQ(fleet.hosts.size(), 3u);
  EXPECT_EQ(fleet.hosts[0].ca_cert, pem);
  EXPECT_TRUE(fleet.hosts[0].tls);
  // A host's own pin wins over the default CA.
  EXPECT_EQ(fleet.hosts[1].ca_cert, "");
  EXPECT_EQ(fleet.hosts[1].fingerprint, "sha256:" + std::string(64, 'd'));
  // `tls: true` alone: the system CA store.
  EXPECT_TRUE(fleet.hosts[2].tls);
  EXPECT_EQ(fleet.hosts[2].ca_cert, "");
  EXPECT_EQ(fleet.hosts[2].fingerprint, "");

  EXPECT_THAT(ErrorOf(FleetWithHostKeys("ca_cert: 'not a certificate'")),
              HasSubstr("ssh_config.hosts[0].ca_cert: must hold only PEM certificates"));
  EXPECT_THAT(ErrorOf("type: fleet\nname: f\nssh_config:\n  token: t\n  ca_cert: |\n"
                      "    -----BEGIN CERTIFICATE-----\n    AAAA\n    -----END CERTIFICATE-----\n"
                      "  hosts: [h1]\n"),
              HasSubstr("ssh_config.ca_cert: certificate 1 is not a valid PEM"));
}

TEST(FleetTls, ContradictionsAreRefused) {
  const std::string pin = "fingerprint: 'sha256:" + std::string(64, 'e') + "'";
  EXPECT_THAT(ErrorOf(FleetWithHostKeys("tls: false, " + pin)),
              HasSubstr("ssh_config.hosts[0].tls: is false, but a fingerprint is given"));
  EXPECT_THAT(ErrorOf("type: fleet\nname: f\nssh_config:\n  token: t\n  hosts:\n"
                      "    - hostname: h1\n      " +
                      pin + "\n      ca_cert: " + BlockScalar(Certificate(), "        ")),
              HasSubstr("give either fingerprint or ca_cert, not both"));
  EXPECT_THAT(ErrorOf(FleetWithHostKeys("tls: 'no'")),
              HasSubstr("ssh_config.hosts[0].tls: must be true or false"));
}

TEST(FleetTls, PlainHttpNeedsTlsFalse) {
  FleetConfiguration fleet = MustParse(FleetWithHostKeys("tls: false"));
  ASSERT_EQ(fleet.hosts.size(), 1u);
  EXPECT_FALSE(fleet.hosts[0].tls);
  EXPECT_THAT(ToJson(fleet), HasSubstr(R"("tls":false)"));
}

TEST(ParseFleetConfiguration, RefusesDefaultsThatNormalizeToOverOneMebibyte) {
  // One ca_cert default copied into 1000 hosts: small text, a normalized form of many MiB, refused
  // while the hosts are read.
  std::string one = Certificate();
  std::string pem;
  for (int i = 0; i < 8; ++i) pem += one;  // a bundle
  std::string text =
      "type: fleet\nname: f\nssh_config:\n  token: t\n  ca_cert: " + BlockScalar(pem, "    ") +
      "  hosts:\n";
  int hosts = static_cast<int>((1u << 20) / pem.size()) + 2;
  ASSERT_LT(hosts, 1000);
  for (int i = 0; i < hosts; ++i) text += "    - h" + std::to_string(i) + "\n";
  EXPECT_EQ(ErrorOf(text), "configuration is too large (over 1 MiB as normalized JSON)");
}

TEST(ParseFleetConfiguration, ReadsCarbonIntensity) {
  const std::string hosts = "ssh_config: {token: t, tls: false, hosts: [h]}\n";
  FleetConfiguration fleet = MustParse("type: fleet\nname: f\ncarbon_intensity: 400\n" + hosts);
  EXPECT_EQ(fleet.carbon_intensity, 400.0);
  EXPECT_EQ(CarbonIntensityOf(ToJson(fleet)), 400.0);
  FleetConfiguration plain = MustParse("type: fleet\nname: f\n" + hosts);
  EXPECT_EQ(plain.carbon_intensity, std::nullopt);
  EXPECT_EQ(CarbonIntensityOf(ToJson(plain)), std::nullopt);
  EXPECT_EQ(MustParse("type: fleet\nname: f\ncarbon_intensity: 0\n" + hosts).carbon_intensity, 0.0);
  EXPECT_EQ(CarbonIntensityOf("not json"), std::nullopt);
}

TEST(ParseFleetConfiguration, RefusesBadCarbonIntensity) {
  const std::string hosts = "ssh_config: {token: t, tls: false, hosts: [h]}\n";
  for (std::string bad : {"-1", "10001", ".nan", ".inf"}) {
    EXPECT_THAT(ErrorOf("type: fleet\nname: f\ncarbon_intensity: " + bad + "\n" + hosts),
                HasSubstr("carbon_intensity: must be between 0 and 10000 (grams of CO2e per kWh)"))
        << bad;
  }
  EXPECT_THAT(ErrorOf("type: fleet\nname: f\ncarbon_intensity: \"400\"\n" + hosts),
              HasSubstr("carbon_intensity: must be a number of grams of CO2e per kWh (got a "
                        "string)"));
  EXPECT_THAT(ErrorOf("type: fleet\nname: f\ncarbon_intensity: [1]\n" + hosts),
              HasSubstr("carbon_intensity: must be a number"));
}

}  // namespace
}  // namespace fleetwatch::model
