// HTTPS on both ends of the http module: the Beast server with a certificate, the async and
// blocking clients with each way of checking it, and what a broken or hostile peer gets.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "http/async_client.h"
#include "http/client.h"
#include "http/server.h"
#include "support/process.h"
#include "support/test_certificates.h"
#include "test_support.h"
#include "util/certificates.h"

namespace fleetwatch::http {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using namespace std::chrono_literals;
using testing::MustCreate;
using testing::NewCa;

void WriteText(const fs::path& file, const std::string& text) {
  std::ofstream out(file, std::ios::trunc);
  out << text;
}

Handler Hello() {
  return [](Request& request) {
    Response response;
    response.content_type = "text/plain";
    response.body = "hello " + request.path;
    return response;
  };
}

// An HTTPS server on 127.0.0.1 whose certificate (IP 127.0.0.1 only) is signed by a private CA.
class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ca_ = NewCa("test CA");
    SelfSignedRequest leaf;
    leaf.common_name = "server";
    leaf.ip_addresses = {"127.0.0.1"};
    server_certificate_ = MustCreate(CreateSignedCertificate(leaf, ca_));
    WriteText(dir_.path() / "server.crt", server_certificate_.certificate_pem);
    WriteText(dir_.path() / "server.key", server_certificate_.private_key_pem);
    ServerOptions options;
    options.read_timeout = 5s;
    options.tls = TlsServerOptions{(dir_.path() / "server.crt").string(),
                                   (dir_.path() / "server.key").string()};
    server_ = std::make_unique<Server>(options, Hello());
    Result<uint16_t> port = server_->Start();
    ASSERT_TRUE(port.ok()) << port.status().ToString();
    port_ = *port;
  }

  AsyncRequest Request(std::optional<TlsClientOptions> tls, std::string host = "127.0.0.1") {
    AsyncRequest request;
    request.host = std::move(host);
    request.port = port_;
    request.target = "/ping";
    request.timeout = 20s;
    request.tls = std::move(tls);
    return request;
  }

  Result<Response> SendOne(AsyncRequest request) {
    return std::move(client_.SendAll({std::move(request)}).front());
  }

  testing::TempDir dir_;
  SelfSignedCertificate ca_;
  SelfSignedCertificate server_certificate_;
  std::unique_ptr<Server> server_;
  uint16_t port_ = 0;
  AsyncClient client_{2};
};

TEST_F(TlsTest, ClientTrustingTheCaGetsTheResponse) {
  Result<Response> reply = SendOne(Request(TlsClientOptions{"", ca_.certificate_pem}));
  ASSERT_TRUE(reply.ok()) << reply.status().ToString();
  EXPECT_EQ(reply->status, 200);
  EXPECT_EQ(reply->body, "hello /ping");
}

TEST_F(TlsTest, PinnedFingerprintIsEnoughWithoutAnyCa) {
  Result<Response> reply = SendOne(Request(TlsClientOptions{server_certificate_.fingerprint, ""}));
  ASSERT_TRUE(reply.ok()) << reply.status().ToString();
  EXPECT_EQ(reply->body, "hello /ping");
}

TEST_F(TlsTest, WrongFingerprintIsRefusedNamingBoth) {
  const std::string pinned = "sha256:" + std::string(64, 'a');
  Result<Response> reply = SendOne(Request(TlsClientOptions{pinned, ""}));
  ASSERT_FALSE(reply.ok());
  EXPECT_EQ(reply.status().code(), StatusCode::kUnavailable);
  EXPECT_THAT(
      reply.status().message(),
      HasSubstr("https://127.0.0.1:" + std::to_string(port_) + ": certificate fingerprint " +
                server_certificate_.fingerprint + " does not match the pinned " + pinned));
}

TEST_F(TlsTest, AnotherCaIsRefused) {
  SelfSignedCertificate other = NewCa("other CA");
  Result<Response> reply = SendOne(Request(TlsClientOptions{"", other.certificate_pem}));
  ASSERT_FALSE(reply.ok());
  EXPECT_EQ(reply.status().code(), StatusCode::kUnavailable);
  EXPECT_THAT(reply.status().message(), HasSubstr("certificate verify failed: "));
}

TEST_F(TlsTest, TheRightCaForTheWrongHostNameIsRefused) {
  // "localhost" resolves to the server, but its certificate names only 127.0.0.1.
  Result<Response> reply = SendOne(Request(TlsClientOptions{"", ca_.certificate_pem}, "localhost"));
  ASSERT_FALSE(reply.ok());
  EXPECT_THAT(reply.status().message(), HasSubstr("certificate verify failed: hostname mismatch"));
}

TEST_F(TlsTest, TheSystemStoreDoesNotTrustAPrivateCa) {
  Result<Response> reply = SendOne(Request(TlsClientOptions{}));
  ASSERT_FALSE(reply.ok());
  EXPECT_THAT(reply.status().message(), HasSubstr("certificate verify failed: "));
}

TEST_F(TlsTest, CaTextThatIsNoCertificateIsInvalidArgument) {
  Result<Response> reply = SendOne(Request(TlsClientOptions{"", "not a certificate"}));
  ASSERT_FALSE(reply.ok());
  EXPECT_EQ(reply.status().code(), StatusCode::kInvalidArgument);
}

TEST_F(TlsTest, PlainClientFailsCleanlyAndTheServerKeepsServing) {
  Result<Response> plain = SendOne(Request(std::nullopt));
  ASSERT_FALSE(plain.ok());
  EXPECT_EQ(plain.status().code(), StatusCode::kUnavailable);
  Result<Response> reply = SendOne(Request(TlsClientOptions{server_certificate_.fingerprint, ""}));
  ASSERT_TRUE(reply.ok()) << reply.status().ToString();
}

TEST_F(TlsTest, GarbageAndOversizeHandshakesAreDroppedAndTheServerKeepsServing) {
  {
    test_support::RawConnection garbage(port_);
    ASSERT_TRUE(garbage.connected());
    garbage.Send(std::string(64 * 1024, '\x16'));
    EXPECT_TRUE(garbage.WaitForClose());
  }
  {
    // A TLS record header (handshake, TLS 1.2) announcing far more than a record may hold.
    test_support::RawConnection oversize(port_);
    ASSERT_TRUE(oversize.connected());
    std::string record = {'\x16', '\x03', '\x03', '\x7f', '\xff'};
    record += std::string(1 << 20, 'x');
    oversize.Send(record);
    EXPECT_TRUE(oversize.WaitForClose());
  }
  {
    // A ClientHello cut short: the handshake deadline (read_timeout) closes it.
    test_support::RawConnection partial(port_);
    ASSERT_TRUE(partial.connected());
    partial.Send(std::string{'\x16', '\x03', '\x01', '\x00', '\x40', '\x01'});
    EXPECT_TRUE(partial.WaitForClose());
  }
  Result<Response> reply = SendOne(Request(TlsClientOptions{"", ca_.certificate_pem}));
  ASSERT_TRUE(reply.ok()) << reply.status().ToString();
}

TEST_F(TlsTest, BlockingClientSpeaksHttpsWithItsCa) {
  ClientOptions options;
  options.tls.ca_certificates_pem = ca_.certificate_pem;
  Result<Client> client = Client::Create("https://127.0.0.1:" + std::to_string(port_), options);
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  EXPECT_TRUE(client->https());
  for (int i = 0; i < 3; ++i) {
    Result<Response> reply = client->Send("GET", "/again");
    ASSERT_TRUE(reply.ok()) << reply.status().ToString();
    EXPECT_EQ(reply->body, "hello /again");
  }
  Result<Client> untrusting = Client::Create("https://127.0.0.1:" + std::to_string(port_));
  ASSERT_TRUE(untrusting.ok());
  Result<Response> refused = untrusting->Send("GET", "/");
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(refused.status().message(), HasSubstr("certificate verify failed"));
}

TEST_F(TlsTest, ConnectionsAreReusedWithOneHandshake) {
  test_support::CountingProxy proxy(port_);
  AsyncRequest request = Request(TlsClientOptions{"", ca_.certificate_pem});
  request.port = proxy.port();
  for (int i = 0; i < 4; ++i) {
    Result<Response> reply = SendOne(request);
    ASSERT_TRUE(reply.ok()) << i << ": " << reply.status().ToString();
    EXPECT_EQ(reply->body, "hello /ping");
  }
  EXPECT_EQ(proxy.accepted(), 1);
}

TEST_F(TlsTest, DifferentVerificationSettingsNeverShareAConnection) {
  test_support::CountingProxy proxy(port_);
  auto through_proxy = [&](TlsClientOptions tls) {
    AsyncRequest request = Request(std::move(tls));
    request.port = proxy.port();
    return request;
  };
  const AsyncRequest by_ca = through_proxy(TlsClientOptions{"", ca_.certificate_pem});
  const AsyncRequest by_pin = through_proxy(TlsClientOptions{server_certificate_.fingerprint, ""});
  const std::string wrong_pin = "sha256:" + std::string(64, 'a');
  const AsyncRequest by_wrong_pin = through_proxy(TlsClientOptions{wrong_pin, ""});
  SelfSignedCertificate other = NewCa("other CA");
  const AsyncRequest by_other_ca = through_proxy(TlsClientOptions{"", other.certificate_pem});

  for (int round = 0; round < 2; ++round) {
    Result<Response> ca_reply = SendOne(by_ca);
    ASSERT_TRUE(ca_reply.ok()) << ca_reply.status().ToString();
    Result<Response> pin_reply = SendOne(by_pin);
    ASSERT_TRUE(pin_reply.ok()) << pin_reply.status().ToString();
    // Idle connections checked one way are never handed to a request that checks another.
    Result<Response> wrong = SendOne(by_wrong_pin);
    ASSERT_FALSE(wrong.ok());
    EXPECT_THAT(wrong.status().message(), HasSubstr("does not match the pinned " + wrong_pin));
    Result<Response> untrusted = SendOne(by_other_ca);
    ASSERT_FALSE(untrusted.ok());
    EXPECT_THAT(untrusted.status().message(), HasSubstr("certificate verify failed: "));
  }
  // One connection each for the CA and the pin, reused in the second round; a new one for every
  // refused request.
  EXPECT_EQ(proxy.accepted(), 6);
}

TEST(TlsServer, TlsClientToAPlainServerSaysSo) {
  Server plain(ServerOptions{}, Hello());
  Result<uint16_t> port = plain.Start();
  ASSERT_TRUE(port.ok());
  AsyncClient client(1);
  AsyncRequest request;
  request.host = "127.0.0.1";
  request.port = *port;
  request.target = "/";
  request.timeout = 20s;
  request.tls = TlsClientOptions{"sha256:" + std::string(64, '0'), ""};
  Result<Response> reply = std::move(client.SendAll({request}).front());
  ASSERT_FALSE(reply.ok());
  EXPECT_THAT(reply.status().message(), HasSubstr("TLS handshake failed"));
}

TEST(TlsServer, CertificateOrKeyThatDoesNotLoadFailsStart) {
  testing::TempDir dir;
  SelfSignedCertificate one = MustCreate(CreateSelfSignedCertificate({}));
  SelfSignedCertificate two = MustCreate(CreateSelfSignedCertificate({}));
  WriteText(dir.path() / "one.crt", one.certificate_pem);
  WriteText(dir.path() / "two.key", two.private_key_pem);
  WriteText(dir.path() / "junk", "junk");
  struct Case {
    std::string certificate, key, message;
  };
  for (const Case& c : std::vector<Case>{
           {"missing.crt", "two.key", "cannot load the TLS certificate"},
           {"junk", "two.key", "cannot load the TLS certificate"},
           {"one.crt", "junk", "cannot load the TLS private key"},
           {"one.crt", "two.key", "does not match"},
       }) {
    ServerOptions options;
    options.tls =
        TlsServerOptions{(dir.path() / c.certificate).string(), (dir.path() / c.key).string()};
    Server server(options, Hello());
    Result<uint16_t> port = server.Start();
    ASSERT_FALSE(port.ok()) << c.certificate << " " << c.key;
    EXPECT_EQ(port.status().code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(port.status().message(), HasSubstr(c.message));
  }
}

// The client's end while an HTTPS reply is awaited: the pending TLS read ends with the cancelled
// request, and nothing of the connection is used after it is gone (a sanitizer build checks).
TEST_F(TlsTest, DestroyingTheClientWhileAnHttpsReplyIsAwaitedIsClean) {
  std::mutex mutex;
  std::condition_variable changed;
  bool entered = false;
  bool release = false;
  ServerOptions options;
  options.read_timeout = 5s;
  options.tls = TlsServerOptions{(dir_.path() / "server.crt").string(),
                                 (dir_.path() / "server.key").string()};
  Server slow(options, [&](http::Request&) {
    std::unique_lock lock(mutex);
    entered = true;
    changed.notify_all();
    changed.wait_for(lock, 10s, [&] { return release; });
    return Response{};
  });
  Result<uint16_t> port = slow.Start();
  ASSERT_TRUE(port.ok()) << port.status().ToString();
  std::atomic<int> calls{0};
  Status status;
  auto client = std::make_unique<AsyncClient>(2);
  AsyncRequest request = Request(TlsClientOptions{"", ca_.certificate_pem});
  request.port = *port;
  client->Send(std::move(request), [&](Result<Response> result) {
    status = result.status();
    calls.fetch_add(1);
  });
  {
    std::unique_lock lock(mutex);
    ASSERT_TRUE(changed.wait_for(lock, 20s, [&] { return entered; }));
  }
  client.reset();
  EXPECT_EQ(calls.load(), 1);
  EXPECT_THAT(status.message(), HasSubstr("cancelled"));
  {
    std::lock_guard lock(mutex);
    release = true;
  }
  changed.notify_all();
  slow.Stop();
}

}  // namespace
}  // namespace fleetwatch::http
