#include "cli/config.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "util/certificates.h"

namespace fleetwatch::cli {
namespace {

// A fresh HOME directory, removed afterwards.
class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ = (std::filesystem::temp_directory_path() / "fleetwatch-cli-XXXXXX").string();
    ASSERT_NE(mkdtemp(templ.data()), nullptr);
    home_ = templ;
    env_["HOME"] = home_.string();
  }
  void TearDown() override { std::filesystem::remove_all(home_); }

  EnvLookup Env() const {
    return [this](std::string_view name) -> std::optional<std::string> {
      auto it = env_.find(std::string(name));
      if (it == env_.end()) return std::nullopt;
      return it->second;
    };
  }
  std::filesystem::path ConfigPath() const { return ConfigFilePath(home_); }
  void WriteFile(const std::string& text) {
    std::filesystem::create_directories(ConfigPath().parent_path());
    std::ofstream(ConfigPath()) << text;
  }
  std::string ReadFile() const {
    std::ifstream in(ConfigPath());
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }

  std::filesystem::path home_;
  std::map<std::string, std::string> env_;
};

TEST_F(ConfigTest, ConfigFileLivesUnderHome) {
  EXPECT_EQ(ConfigPath(), home_ / ".fleetwatch" / "config.yml");
  EXPECT_EQ(*ConfigFilePathFromEnv(Env()), ConfigPath());
  env_.erase("HOME");
  EXPECT_EQ(ConfigFilePathFromEnv(Env()).status().code(), StatusCode::kFailedPrecondition);
}

TEST_F(ConfigTest, FlagBeatsEnvironmentBeatsFile) {
  WriteFile("url: http://file:1\ntoken: file-token\nproject: fromfile\n");
  Result<ClientSettings> s = ResolveClientSettings({}, Env());
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->url, "http://file:1");
  EXPECT_EQ(s->token, "file-token");
  EXPECT_EQ(s->project, "fromfile");

  env_["FLEETWATCH_URL"] = "http://env:2";
  env_["FLEETWATCH_TOKEN"] = "env-token";
  env_["FLEETWATCH_PROJECT"] = "fromenv";
  s = ResolveClientSettings({}, Env());
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->url, "http://env:2");
  EXPECT_EQ(s->token, "env-token");
  EXPECT_EQ(s->project, "fromenv");

  s = ResolveClientSettings({"http://flag:3", "flag-token", "fromflag", {}}, Env());
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->url, "http://flag:3");
  EXPECT_EQ(s->token, "flag-token");
  EXPECT_EQ(s->project, "fromflag");
}

TEST_F(ConfigTest, EachValueFallsBackOnItsOwn) {
  WriteFile("url: http://file:1\ntoken: file-token\n");
  env_["FLEETWATCH_TOKEN"] = "env-token";
  env_["FLEETWATCH_PROJECT"] = "";  // empty counts as unset
  SettingValues flags;
  flags.project = "fromflag";
  Result<ClientSettings> s = ResolveClientSettings(flags, Env());
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->url, "http://file:1");
  EXPECT_EQ(s->token, "env-token");
  EXPECT_EQ(s->project, "fromflag");
}

TEST_F(ConfigTest, ProjectDefaultsToMain) {
  env_["FLEETWATCH_URL"] = "http://127.0.0.1:3000/";
  env_["FLEETWATCH_TOKEN"] = "t";
  Result<ClientSettings> s = ResolveClientSettings({}, Env());
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->project, "main");
  EXPECT_EQ(s->url, "http://127.0.0.1:3000");  // trailing slash dropped
}

TEST_F(ConfigTest, MissingUrlOrTokenSaysToRunConfig) {
  Result<ClientSettings> s = ResolveClientSettings({}, Env());
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(s.status().message().find("fleetwatch config"), std::string::npos);

  env_["FLEETWATCH_URL"] = "http://h:1";
  s = ResolveClientSettings({}, Env());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("token"), std::string::npos);
}

TEST_F(ConfigTest, BadValuesNameTheirSource) {
  env_["FLEETWATCH_URL"] = "ftp://h";
  env_["FLEETWATCH_TOKEN"] = "t";
  Result<ClientSettings> s = ResolveClientSettings({}, Env());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("FLEETWATCH_URL"), std::string::npos);

  SettingValues flags;
  flags.project = "Bad_Name";
  env_["FLEETWATCH_URL"] = "http://h";
  s = ResolveClientSettings(flags, Env());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("--project"), std::string::npos);
}

TEST_F(ConfigTest, TheCaCertificateCountsForHttpsOnly) {
  const std::filesystem::path ca = home_ / "ca.pem";
  SelfSignedRequest request;
  request.certificate_authority = true;
  Result<SelfSignedCertificate> made = CreateSelfSignedCertificate(request);
  ASSERT_TRUE(made.ok());
  std::ofstream(ca) << made->certificate_pem;
  WriteFile("url: https://h:1\ntoken: t\nca_cert: " + ca.string() + "\n");
  Result<ClientSettings> s = ResolveClientSettings({}, Env());
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->ca_cert_pem, made->certificate_pem);

  // The environment wins over the file and must name a readable certificate.
  env_["FLEETWATCH_CA_CERT"] = (home_ / "missing.pem").string();
  s = ResolveClientSettings({}, Env());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("missing.pem"), std::string::npos);
  EXPECT_NE(s.status().message().find("FLEETWATCH_CA_CERT"), std::string::npos);

  // Over plain HTTP it is not read at all.
  s = ResolveClientSettings({"http://h:1", "t", "p", {}}, Env());
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->ca_cert_pem, "");
}

TEST_F(ConfigTest, MalformedFileIsAClearError) {
  WriteFile("url: [unclosed\n");
  Result<ClientSettings> s = ResolveClientSettings({}, Env());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("config.yml"), std::string::npos);
  WriteFile("- a list\n");
  EXPECT_FALSE(ReadConfigFile(ConfigPath()).ok());
  WriteFile("url: {nested: map}\n");
  EXPECT_FALSE(ReadConfigFile(ConfigPath()).ok());
}

TEST_F(ConfigTest, FileIsNotReadWhenFlagsAndEnvironmentSayEverything) {
  WriteFile("url: [unclosed\n");
  Result<ClientSettings> s = ResolveClientSettings({"http://h:1", "t", "p", {}}, Env());
  EXPECT_TRUE(s.ok()) << s.status().ToString();
}

TEST_F(ConfigTest, UpdateCreatesPrivateDirectoryAndFile) {
  SettingValues updates;
  updates.url = "http://127.0.0.1:3000";
  updates.token = "secret-token";
  ASSERT_TRUE(UpdateConfigFile(ConfigPath(), updates).ok());

  struct stat st {};
  ASSERT_EQ(stat(ConfigPath().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(stat(ConfigPath().parent_path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);

  Result<SettingValues> read = ReadConfigFile(ConfigPath());
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(read->url, "http://127.0.0.1:3000");
  EXPECT_EQ(read->token, "secret-token");
  EXPECT_FALSE(read->project.has_value());
  // No temporary file is left behind.
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(ConfigPath().parent_path())) {
    (void)entry;
    ++files;
  }
  EXPECT_EQ(files, 1);
}

TEST_F(ConfigTest, UpdateMergesAndKeepsOtherKeys) {
  WriteFile("url: http://old:1\ntoken: old\ncolor: blue\n");
  chmod(ConfigPath().c_str(), 0644);
  SettingValues updates;
  updates.token = "new-token";
  updates.project = "proj";
  ASSERT_TRUE(UpdateConfigFile(ConfigPath(), updates).ok());
  Result<SettingValues> read = ReadConfigFile(ConfigPath());
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(read->url, "http://old:1");
  EXPECT_EQ(read->token, "new-token");
  EXPECT_EQ(read->project, "proj");
  EXPECT_NE(ReadFile().find("color: blue"), std::string::npos);
  struct stat st {};
  ASSERT_EQ(stat(ConfigPath().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(ConfigTest, UpdateLeavesAMalformedFileAlone) {
  WriteFile("url: [unclosed\n");
  SettingValues updates;
  updates.token = "t";
  EXPECT_FALSE(UpdateConfigFile(ConfigPath(), updates).ok());
  EXPECT_EQ(ReadFile(), "url: [unclosed\n");
}

TEST_F(ConfigTest, ValuesThatLookLikeNumbersStayText) {
  SettingValues updates;
  updates.token = "0123";
  ASSERT_TRUE(UpdateConfigFile(ConfigPath(), updates).ok());
  EXPECT_EQ(ReadConfigFile(ConfigPath())->token, "0123");
}

// The server writes its first admin's config with this writer too (api/server_command.cc): values
// YAML would read as something else come back exactly as written.
TEST_F(ConfigTest, ValuesWithYamlIndicatorsRoundTrip) {
  for (const std::string value :
       {"*alias", "&anchor", "!tag",        "'quoted",   "\"double",   "#comment", "a: b",
        "key:",   "- item",  "line\nbreak", "trailing ", "%directive", "@at",      "`tick",
        "|block", ">folded", "{a}",         "[a]",       "~",          "null",     "true",
        "?"}) {
    SCOPED_TRACE(value);
    SettingValues updates;
    updates.token = value;
    updates.url = "http://127.0.0.1:3000";
    ASSERT_TRUE(UpdateConfigFile(ConfigPath(), updates).ok());
    Result<SettingValues> read = ReadConfigFile(ConfigPath());
    ASSERT_TRUE(read.ok()) << read.status().ToString() << "\n" << ReadFile();
    EXPECT_EQ(read->token, value) << ReadFile();
    EXPECT_EQ(read->url, "http://127.0.0.1:3000");
  }
}

TEST(NormalizeServerUrl, AcceptsHttpHostAndPort) {
  EXPECT_EQ(*NormalizeServerUrl("http://127.0.0.1:3000"), "http://127.0.0.1:3000");
  EXPECT_EQ(*NormalizeServerUrl("http://fleet.example.com/"), "http://fleet.example.com");
  EXPECT_EQ(*NormalizeServerUrl("http://[::1]:8080"), "http://[::1]:8080");
  EXPECT_EQ(*NormalizeServerUrl("https://fleet.example.com:3000/"),
            "https://fleet.example.com:3000");
}

TEST(NormalizeServerUrl, RefusesEverythingElse) {
  for (const char* bad :
       {"", "127.0.0.1:3000", "https://", "ftp://h", "http://", "http://:80",
        "http://h:", "http://h:0", "http://h:65536", "http://h:80x", "http://h/path", "http://u@h",
        "http://h?q", "http://h:80/x", "http://[::1", "http://[zz]"}) {
    EXPECT_FALSE(NormalizeServerUrl(bad).ok()) << bad;
  }
}

TEST(ValidateToken, RefusesEmptySpacesAndControlCharacters) {
  EXPECT_TRUE(ValidateToken("abc-DEF_123.~+/=").ok());
  EXPECT_FALSE(ValidateToken("").ok());
  EXPECT_FALSE(ValidateToken("a b").ok());
  EXPECT_FALSE(ValidateToken("a\r\nX-Evil: 1").ok());
  EXPECT_FALSE(ValidateToken("tökén").ok());
}

TEST(MaskToken, ShowsTheFirstFourCharacters) {
  EXPECT_EQ(MaskToken("abcdef0123456789"), "abcd…");
  EXPECT_EQ(MaskToken("abcd"), "…");
  EXPECT_EQ(MaskToken(""), "…");
}

}  // namespace
}  // namespace fleetwatch::cli
