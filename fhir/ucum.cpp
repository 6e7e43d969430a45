// UCUM expression syntax: main-term = ["/"] term; term = component {("." |
// "/") component}; component = annotatable [annotation] | annotation |
// factor | "(" term ")"; annotatable = simple-unit [exponent];
// simple-unit = [prefix] atom.
#include "fhir/ucum.hpp"

#include <fmt/format.h>

#include <string>
#include <unordered_map>

namespace eds::fhir {
namespace {

// Unit atoms: true for metric ones (which take prefixes).
const std::unordered_map<std::string_view, bool>& Atoms() {
  static const std::unordered_map<std::string_view, bool> kAtoms = [] {
    std::unordered_map<std::string_view, bool> m;
    for (std::string_view a :
         {"m", "s", "g", "rad", "K", "C", "cd", "mol", "sr", "Hz", "N", "Pa", "J", "W", "A", "V", "F", "Ohm", "S",
          "Wb", "Cel", "T", "H", "lm", "lx", "Bq", "Gy", "Sv", "l", "L", "ar", "t", "bar", "u", "eV", "pc", "[c]",
          "[h]", "[k]", "[eps_0]", "[mu_0]", "[e]", "[m_e]", "[m_p]", "[G]", "[g]", "[ly]", "gf", "Ky", "Gal", "dyn",
          "erg", "P", "Bi", "St", "Mx", "G", "Oe", "Gb", "sb", "Lmb", "ph", "Ci", "R", "RAD", "REM", "cal_m",
          "cal_IT", "cal_th", "cal", "tex", "m[H2O]", "m[Hg]", "eq", "osm", "g%", "kat", "U", "[iU]", "[IU]", "Np",
          "B", "B[SPL]", "B[V]", "B[mV]", "B[uV]", "B[10.nV]", "B[W]", "B[kW]", "st", "b", "mho", "bit", "By", "Bd"})
      m.emplace(a, true);
    for (std::string_view a :
         {"10*", "10^", "[pi]", "%", "[ppth]", "[ppm]", "[ppb]", "[pptr]", "gon", "deg", "'", "''", "min", "h", "d",
          "AU", "mo_s", "mo_j", "mo_g", "a_t", "a_j", "a_g", "wk", "mo", "a", "[in_i]", "[ft_i]", "[yd_i]", "[mi_i]",
          "[fth_i]", "[nmi_i]", "[kn_i]", "[sin_i]", "[sft_i]", "[syd_i]", "[cin_i]", "[cft_i]", "[cyd_i]", "[bf_i]",
          "[cr_i]", "[mil_i]", "[cml_i]", "[hd_i]", "[ft_us]", "[yd_us]", "[in_us]", "[rd_us]", "[ch_us]", "[lk_us]",
          "[rch_us]", "[rlk_us]", "[fth_us]", "[fur_us]", "[mi_us]", "[acr_us]", "[srd_us]", "[smi_us]", "[sct]",
          "[twp]", "[mil_us]", "[in_br]", "[ft_br]", "[rd_br]", "[ch_br]", "[lk_br]", "[fth_br]", "[pc_br]",
          "[yd_br]", "[mi_br]", "[nmi_br]", "[kn_br]", "[acr_br]", "[gal_us]", "[bbl_us]", "[qt_us]", "[pt_us]",
          "[gil_us]", "[foz_us]", "[fdr_us]", "[min_us]", "[crd_us]", "[bu_us]", "[gal_wi]", "[pk_us]", "[dqt_us]",
          "[dpt_us]", "[tbs_us]", "[tsp_us]", "[cup_us]", "[foz_m]", "[cup_m]", "[tsp_m]", "[tbs_m]", "[gal_br]",
          "[pk_br]", "[bu_br]", "[qt_br]", "[pt_br]", "[gil_br]", "[foz_br]", "[fdr_br]", "[min_br]", "[gr]",
          "[lb_av]", "[oz_av]", "[dr_av]", "[scwt_av]", "[lcwt_av]", "[ston_av]", "[lton_av]", "[stone_av]",
          "[pwt_tr]", "[oz_tr]", "[lb_tr]", "[sc_ap]", "[dr_ap]", "[oz_ap]", "[lb_ap]", "[oz_m]", "[lne]", "[pnt]",
          "[pca]", "[pnt_pr]", "[pca_pr]", "[pied]", "[pouce]", "[ligne]", "[didot]", "[cicero]", "[degF]",
          "[degR]", "[degRe]", "cal_[15]", "cal_[20]", "[Cal]", "[Btu_39]", "[Btu_59]", "[Btu_60]", "[Btu_m]",
          "[Btu_IT]", "[Btu_th]", "[Btu]", "[HP]", "[den]", "[in_i'H2O]", "[in_i'Hg]", "[PRU]", "[wood'U]", "[diop]",
          "[p'diop]", "%[slope]", "[mesh_i]", "[Ch]", "[drp]", "[hnsf'U]", "[MET]", "[hp'_X]", "[hp'_C]", "[hp'_M]",
          "[hp'_Q]", "[hp_X]", "[hp_C]", "[hp_M]", "[hp_Q]", "[kp_X]", "[kp_C]", "[kp_M]", "[kp_Q]", "[pH]", "[S]",
          "[HPF]", "[LPF]", "[arb'U]", "[USP'U]", "[GPL'U]", "[MPL'U]", "[APL'U]", "[beth'U]", "[anti'Xa'U]",
          "[todd'U]", "[dye'U]", "[smgy'U]", "[bdsk'U]", "[ka'U]", "[knk'U]", "[mclg'U]", "[tb'U]", "[CCID_50]",
          "[TCID_50]", "[EID_50]", "[PFU]", "[FFU]", "[CFU]", "[IR]", "[BAU]", "[AU]", "[Amb'a'1'U]", "[PNU]", "[Lf]",
          "[D'ag'U]", "[FEU]", "[ELU]", "[EU]", "Ao", "att", "[psi]", "circ", "sph", "[car_m]", "[car_Au]",
          "[smoot]", "[m/s2/Hz^(1/2)]", "bit_s"})
      m.emplace(a, false);
    return m;
  }();
  return kAtoms;
}

constexpr std::string_view kPrefixes[] = {"da", "Ki", "Mi", "Gi", "Ti", "Y", "Z", "E", "P", "T", "G", "M", "k",
                                          "h",  "d",  "c",  "m",  "u",  "n", "p", "f", "a", "z", "y"};

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// A unit symbol with an optional prefix.
bool SimpleUnit(std::string_view s) {
  const auto& atoms = Atoms();
  if (atoms.count(s)) return true;
  for (std::string_view p : kPrefixes)
    if (s.size() > p.size() && s.substr(0, p.size()) == p) {
      auto it = atoms.find(s.substr(p.size()));
      if (it != atoms.end() && it->second) return true;
    }
  return false;
}

class Parser {
 public:
  explicit Parser(std::string_view s) : s_(s) {}

  std::optional<std::string> Parse() {
    if (s_.empty()) return std::string("the unit is empty");
    if (s_[pos_] == '/') ++pos_;
    if (!Term()) return error_;
    if (pos_ != s_.size()) return Fail(fmt::format("unexpected '{}' at position {}", s_[pos_], pos_ + 1));
    return std::nullopt;
  }

 private:
  std::string_view s_;
  std::size_t pos_ = 0;
  int depth_ = 0;
  std::optional<std::string> error_;

  std::optional<std::string> Fail(std::string why) {
    if (!error_) error_ = std::move(why);
    return error_;
  }

  bool Term() {
    if (!Component()) return false;
    while (pos_ < s_.size() && (s_[pos_] == '.' || s_[pos_] == '/')) {
      ++pos_;
      if (!Component()) return false;
    }
    return true;
  }

  bool Annotation() {
    std::size_t close = s_.find('}', pos_);
    if (close == std::string_view::npos) {
      Fail("an annotation '{' is not closed");
      return false;
    }
    for (std::size_t i = pos_ + 1; i < close; ++i)
      if (static_cast<unsigned char>(s_[i]) < 0x20 || static_cast<unsigned char>(s_[i]) > 0x7e || s_[i] == '{') {
        Fail("an annotation holds a character UCUM does not allow");
        return false;
      }
    pos_ = close + 1;
    return true;
  }

  bool Component() {
    if (pos_ >= s_.size()) {
      Fail("a unit is missing at the end");
      return false;
    }
    char c = s_[pos_];
    if (c == '(') {
      if (++depth_ > 16) {
        Fail("too deeply nested");
        return false;
      }
      ++pos_;
      if (!Term()) return false;
      if (pos_ >= s_.size() || s_[pos_] != ')') {
        Fail("a '(' is not closed");
        return false;
      }
      ++pos_;
      --depth_;
      return true;
    }
    if (c == '{') return Annotation();
    // a symbol: up to the next operator outside brackets
    std::size_t start = pos_;
    int brackets = 0;
    while (pos_ < s_.size()) {
      char x = s_[pos_];
      if (x == '[') ++brackets;
      if (x == ']') --brackets;
      if (brackets == 0 && (x == '.' || x == '/' || x == '(' || x == ')' || x == '{' || x == '}')) break;
      ++pos_;
    }
    std::string_view symbol = s_.substr(start, pos_ - start);
    if (symbol.empty()) {
      Fail(fmt::format("a unit is missing at position {}", start + 1));
      return false;
    }
    bool all_digits = true;
    for (char x : symbol) all_digits = all_digits && IsDigit(x);
    if (all_digits) return true;  // a factor
    // a trailing exponent: [+-]digits
    std::size_t end = symbol.size();
    while (end > 0 && IsDigit(symbol[end - 1])) --end;
    if (end < symbol.size() && end > 0 && (symbol[end - 1] == '+' || symbol[end - 1] == '-')) --end;
    std::string_view unit = symbol.substr(0, end);
    if (unit.empty() || (!SimpleUnit(unit) && !SimpleUnit(symbol))) {
      Fail(fmt::format("'{}' is not a UCUM unit", unit.empty() ? symbol : unit));
      return false;
    }
    if (pos_ < s_.size() && s_[pos_] == '{') return Annotation();
    return true;
  }
};

}  // namespace

std::optional<std::string> UcumProblem(std::string_view code) { return Parser(code).Parse(); }

}  // namespace eds::fhir
