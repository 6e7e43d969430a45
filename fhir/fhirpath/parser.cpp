// FHIRPath lexer and recursive-descent parser: text to an immutable syntax
// tree, with errors as values that name the offending position.
#include "fhir/fhirpath.hpp"

#include <algorithm>
#include <charconv>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "fhir/fhirpath/ast.hpp"
#include "fhir/fhirpath/values.hpp"

namespace eds::fhir::fhirpath {
namespace {

enum class Tok : std::uint8_t {
  kEnd, kIdent, kQuotedIdent, kString, kNumber, kDate, kDateTime, kTime, kVariable, kSpecial, kSymbol,
};

struct Token {
  Tok kind = Tok::kEnd;
  std::string text;  // identifier, unescaped string, number, literal without '@', symbol
  std::size_t pos = 0;
};

// Thrown inside the parser only; Parse turns it into an Error value.
struct ParseFailure {
  Error error;
};

[[noreturn]] void Fail(std::size_t pos, std::string message) { throw ParseFailure{{std::move(message), pos}}; }

bool IsIdentStart(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; }
bool IsIdentChar(char c) { return IsIdentStart(c) || (c >= '0' && c <= '9'); }
bool IsDigitChar(char c) { return c >= '0' && c <= '9'; }

void AppendUtf8(std::string& out, unsigned cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

class Lexer {
 public:
  explicit Lexer(std::string_view text) : t_(text) {}

  std::vector<Token> Run() {
    std::vector<Token> out;
    while (true) {
      SkipSpaceAndComments();
      Token tok;
      tok.pos = i_;
      if (i_ >= t_.size()) {
        out.push_back(std::move(tok));
        return out;
      }
      char c = t_[i_];
      if (IsIdentStart(c)) {
        tok.kind = Tok::kIdent;
        tok.text = Identifier();
      } else if (c == '`') {
        tok.kind = Tok::kQuotedIdent;
        tok.text = Quoted('`');
      } else if (c == '\'') {
        tok.kind = Tok::kString;
        tok.text = Quoted('\'');
      } else if (IsDigitChar(c)) {
        tok.kind = Tok::kNumber;
        tok.text = Number();
      } else if (c == '@') {
        DateLiteral(tok);
      } else if (c == '%') {
        ++i_;
        tok.kind = Tok::kVariable;
        if (i_ < t_.size() && IsIdentStart(t_[i_])) tok.text = Identifier();
        else if (i_ < t_.size() && t_[i_] == '`') tok.text = Quoted('`');
        else if (i_ < t_.size() && t_[i_] == '\'') tok.text = Quoted('\'');
        else Fail(tok.pos, "expected a variable name after '%'");
      } else if (c == '$') {
        ++i_;
        if (i_ >= t_.size() || !IsIdentStart(t_[i_])) Fail(tok.pos, "expected $this, $index or $total");
        tok.kind = Tok::kSpecial;
        tok.text = Identifier();
        if (tok.text != "this" && tok.text != "index" && tok.text != "total")
          Fail(tok.pos, "unknown special variable '$" + tok.text + "'");
      } else {
        tok.kind = Tok::kSymbol;
        tok.text = Symbol();
      }
      out.push_back(std::move(tok));
    }
  }

 private:
  void SkipSpaceAndComments() {
    while (i_ < t_.size()) {
      char c = t_[i_];
      if (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f') {
        ++i_;
      } else if (c == '/' && i_ + 1 < t_.size() && t_[i_ + 1] == '/') {
        while (i_ < t_.size() && t_[i_] != '\n') ++i_;
      } else if (c == '/' && i_ + 1 < t_.size() && t_[i_ + 1] == '*') {
        auto end = t_.find("*/", i_ + 2);
        if (end == std::string_view::npos) Fail(i_, "unterminated comment");
        i_ = end + 2;
      } else {
        return;
      }
    }
  }

  std::string Identifier() {
    std::size_t start = i_;
    while (i_ < t_.size() && IsIdentChar(t_[i_])) ++i_;
    return std::string(t_.substr(start, i_ - start));
  }

  // A '…' string or `…` identifier with FHIRPath escapes.
  std::string Quoted(char quote) {
    std::size_t start = i_++;
    std::string out;
    while (true) {
      if (i_ >= t_.size()) Fail(start, quote == '\'' ? "unterminated string" : "unterminated identifier");
      char c = t_[i_++];
      if (c == quote) return out;
      if (c != '\\') {
        out += c;
        continue;
      }
      if (i_ >= t_.size()) Fail(start, "unterminated string");
      char e = t_[i_++];
      switch (e) {
        case '\'': case '"': case '`': case '\\': case '/': out += e; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          if (i_ + 4 > t_.size()) Fail(i_ - 2, "invalid \\u escape");
          unsigned cp = 0;
          auto [p, ec] = std::from_chars(t_.data() + i_, t_.data() + i_ + 4, cp, 16);
          if (ec != std::errc() || p != t_.data() + i_ + 4) Fail(i_ - 2, "invalid \\u escape");
          i_ += 4;
          // a surrogate pair spells one code point
          if (cp >= 0xD800 && cp < 0xDC00 && i_ + 6 <= t_.size() && t_[i_] == '\\' && t_[i_ + 1] == 'u') {
            unsigned low = 0;
            auto [q, ec2] = std::from_chars(t_.data() + i_ + 2, t_.data() + i_ + 6, low, 16);
            if (ec2 == std::errc() && q == t_.data() + i_ + 6 && low >= 0xDC00 && low < 0xE000) {
              cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
              i_ += 6;
            }
          }
          AppendUtf8(out, cp);
          break;
        }
        default:
          Fail(i_ - 2, std::string("invalid escape '\\") + e + "'");
      }
    }
  }

  std::string Number() {
    std::size_t start = i_;
    while (i_ < t_.size() && IsDigitChar(t_[i_])) ++i_;
    // a '.' belongs to the number only when digits follow: 1.5, but 1.exists()
    if (i_ + 1 < t_.size() && t_[i_] == '.' && IsDigitChar(t_[i_ + 1])) {
      ++i_;
      while (i_ < t_.size() && IsDigitChar(t_[i_])) ++i_;
    }
    return std::string(t_.substr(start, i_ - start));
  }

  std::size_t Digits(std::size_t at, std::size_t n) const {
    std::size_t k = 0;
    while (k < n && at + k < t_.size() && IsDigitChar(t_[at + k])) ++k;
    return k;
  }

  // @2019-01-01, @2019-01-01T10:00:00.000+02:00, @2019T, @T10:00
  void DateLiteral(Token& tok) {
    std::size_t start = ++i_;
    if (i_ < t_.size() && t_[i_] == 'T') {
      ++i_;
      TimePart();
      tok.kind = Tok::kTime;
      tok.text = std::string(t_.substr(start + 1, i_ - start - 1));
      if (!DateTimeValue::ParseTime(tok.text)) Fail(tok.pos, "invalid time literal '@T" + tok.text + "'");
      return;
    }
    if (Digits(i_, 4) != 4) Fail(tok.pos, "invalid date literal");
    i_ += 4;
    for (int part = 0; part < 2; ++part) {
      if (i_ < t_.size() && t_[i_] == '-' && Digits(i_ + 1, 2) == 2) i_ += 3;
      else break;
    }
    tok.kind = Tok::kDate;
    if (i_ < t_.size() && t_[i_] == 'T') {
      ++i_;
      tok.kind = Tok::kDateTime;
      if (Digits(i_, 2) == 2) {
        TimePart();
        if (i_ < t_.size() && t_[i_] == 'Z') {
          ++i_;
        } else if (i_ < t_.size() && (t_[i_] == '+' || t_[i_] == '-') && Digits(i_ + 1, 2) == 2 &&
                   i_ + 3 < t_.size() && t_[i_ + 3] == ':' && Digits(i_ + 4, 2) == 2) {
          i_ += 6;
        }
      }
    }
    tok.text = std::string(t_.substr(start, i_ - start));
    bool ok = tok.kind == Tok::kDate ? DateTimeValue::ParseDate(tok.text).has_value()
                                     : DateTimeValue::ParseDateTime(tok.text).has_value();
    if (!ok) Fail(tok.pos, "invalid date/time literal '@" + tok.text + "'");
  }

  void TimePart() {
    if (Digits(i_, 2) != 2) return;
    i_ += 2;
    for (int part = 0; part < 2; ++part) {
      if (i_ < t_.size() && t_[i_] == ':' && Digits(i_ + 1, 2) == 2) i_ += 3;
      else return;
    }
    if (i_ < t_.size() && t_[i_] == '.' && Digits(i_ + 1, 1) == 1) {
      ++i_;
      while (i_ < t_.size() && IsDigitChar(t_[i_])) ++i_;
    }
  }

  std::string Symbol() {
    static constexpr std::string_view kTwo[] = {"<=", ">=", "!=", "!~"};
    for (auto s : kTwo)
      if (t_.substr(i_, 2) == s) {
        i_ += 2;
        return std::string(s);
      }
    char c = t_[i_];
    if (std::string_view(".,()[]{}+-*/&|=~<>").find(c) == std::string_view::npos)
      Fail(i_, std::string("unexpected character '") + c + "'");
    ++i_;
    return std::string(1, c);
  }

  std::string_view t_;
  std::size_t i_ = 0;
};

struct BinaryOp {
  std::string_view token;
  bool keyword;
  Op op;
  int level;  // 1 binds loosest
};

constexpr BinaryOp kBinaryOps[] = {
    {"implies", true, Op::kImplies, 1},
    {"or", true, Op::kOr, 2},         {"xor", true, Op::kXor, 2},
    {"and", true, Op::kAnd, 3},
    {"in", true, Op::kIn, 4},         {"contains", true, Op::kContains, 4},
    {"=", false, Op::kEqual, 5},      {"~", false, Op::kEquivalent, 5},
    {"!=", false, Op::kNotEqual, 5},  {"!~", false, Op::kNotEquivalent, 5},
    {"<", false, Op::kLess, 6},       {"<=", false, Op::kLessOrEqual, 6},
    {">", false, Op::kGreater, 6},    {">=", false, Op::kGreaterOrEqual, 6},
    {"|", false, Op::kUnion, 7},
    {"is", true, Op::kIs, 8},         {"as", true, Op::kAs, 8},
    {"+", false, Op::kPlus, 9},       {"-", false, Op::kMinus, 9},  {"&", false, Op::kConcat, 9},
    {"*", false, Op::kMultiply, 10},  {"/", false, Op::kDivide, 10},
    {"div", true, Op::kDiv, 10},      {"mod", true, Op::kMod, 10},
};
constexpr int kTopLevel = 1;
constexpr int kBottomLevel = 10;
constexpr int kMaxDepth = 256;

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : toks_(std::move(tokens)) {}

  std::unique_ptr<Node> Run() {
    auto root = Binary(kTopLevel);
    if (Peek().kind != Tok::kEnd) Fail(Peek().pos, "unexpected " + Describe(Peek()));
    return root;
  }

 private:
  const Token& Peek(std::size_t ahead = 0) const {
    std::size_t k = std::min(i_ + ahead, toks_.size() - 1);
    return toks_[k];
  }
  const Token& Next() {
    const Token& t = toks_[i_];
    if (i_ + 1 < toks_.size()) ++i_;
    return t;
  }
  bool IsSymbol(std::string_view s, std::size_t ahead = 0) const {
    return Peek(ahead).kind == Tok::kSymbol && Peek(ahead).text == s;
  }
  void Expect(std::string_view s) {
    if (!IsSymbol(s)) Fail(Peek().pos, "expected '" + std::string(s) + "' but found " + Describe(Peek()));
    Next();
  }
  static std::string Describe(const Token& t) {
    switch (t.kind) {
      case Tok::kEnd: return "end of expression";
      case Tok::kString: return "string '" + t.text + "'";
      default: return "'" + t.text + "'";
    }
  }

  const BinaryOp* OperatorAt() const {
    const Token& t = Peek();
    if (t.kind != Tok::kSymbol && t.kind != Tok::kIdent) return nullptr;
    for (const auto& op : kBinaryOps)
      if (op.token == t.text && op.keyword == (t.kind == Tok::kIdent)) return &op;
    return nullptr;
  }

  struct DepthGuard {
    explicit DepthGuard(Parser& p) : p_(p) {
      if (++p_.depth_ > kMaxDepth) Fail(p_.Peek().pos, "expression nested too deeply");
    }
    ~DepthGuard() { --p_.depth_; }
    Parser& p_;
  };

  std::unique_ptr<Node> Binary(int level) {
    if (level > kBottomLevel) return Unary();
    DepthGuard guard(*this);
    auto lhs = Binary(level + 1);
    while (const BinaryOp* op = OperatorAt()) {
      if (op->level != level) break;
      std::size_t pos = Next().pos;
      auto node = std::make_unique<Node>();
      node->pos = pos;
      node->op = op->op;
      node->target = std::move(lhs);
      if (op->op == Op::kIs || op->op == Op::kAs) {
        node->kind = NodeKind::kTypeOp;
        node->type = TypeSpecifier();
      } else {
        node->kind = NodeKind::kBinary;
        node->rhs = Binary(level + 1);
      }
      lhs = std::move(node);
    }
    return lhs;
  }

  std::unique_ptr<Node> Unary() {
    DepthGuard guard(*this);
    if (IsSymbol("+") || IsSymbol("-")) {
      std::size_t pos = Peek().pos;
      bool negate = Next().text == "-";
      auto operand = Unary();
      if (operand->kind == NodeKind::kLiteral && IsNumeric(operand->literal.kind)) {
        // fold the sign into a number literal: -5 is a literal, -5.abs() is not
        if (negate) NegateLiteral(*operand);
        operand->pos = pos;
        return operand;
      }
      auto node = std::make_unique<Node>();
      node->kind = NodeKind::kUnary;
      node->op = negate ? Op::kNegate : Op::kPositive;
      node->pos = pos;
      node->target = std::move(operand);
      return node;
    }
    return Postfix();
  }

  static bool IsNumeric(ValueKind k) {
    return k == ValueKind::kInteger || k == ValueKind::kDecimal || k == ValueKind::kQuantity;
  }

  static void NegateLiteral(Node& n) {
    if (!n.literal_text.empty() && n.literal_text[0] == '-') n.literal_text.erase(0, 1);
    else n.literal_text.insert(0, 1, '-');
    n.literal.integer = -n.literal.integer;
    n.literal.text = n.literal_text;
  }

  std::unique_ptr<Node> Postfix() {
    auto node = Term();
    while (true) {
      if (IsSymbol(".")) {
        Next();
        const Token& name = Peek();
        if (name.kind != Tok::kIdent && name.kind != Tok::kQuotedIdent)
          Fail(name.pos, "expected a name after '.' but found " + Describe(name));
        Next();
        node = Invocation(name, std::move(node));
      } else if (IsSymbol("[")) {
        std::size_t pos = Next().pos;
        auto idx = std::make_unique<Node>();
        idx->kind = NodeKind::kIndexer;
        idx->pos = pos;
        idx->target = std::move(node);
        idx->rhs = Binary(kTopLevel);
        Expect("]");
        node = std::move(idx);
      } else {
        return node;
      }
    }
  }

  // name or name(args), applied to `target` (nullptr: $this).
  std::unique_ptr<Node> Invocation(const Token& name, std::unique_ptr<Node> target) {
    auto node = std::make_unique<Node>();
    node->pos = name.pos;
    node->name = name.text;
    node->target = std::move(target);
    if (!IsSymbol("(")) {
      node->kind = NodeKind::kMember;
      return node;
    }
    node->kind = NodeKind::kCall;
    Next();
    if (!IsSymbol(")")) {
      while (true) {
        node->args.push_back(Binary(kTopLevel));
        if (!IsSymbol(",")) break;
        Next();
      }
    }
    Expect(")");
    const FunctionDef* fn = FindFunction(node->name);
    if (fn == nullptr) Fail(node->pos, "unknown function '" + node->name + "'");
    int n = static_cast<int>(node->args.size());
    if (n < fn->min_args || n > fn->max_args)
      Fail(node->pos, "function '" + node->name + "' takes " +
                          (fn->min_args == fn->max_args ? std::to_string(fn->min_args)
                                                        : std::to_string(fn->min_args) + " to " +
                                                              std::to_string(fn->max_args)) +
                          " argument(s), not " + std::to_string(n));
    node->function = fn;
    if (fn->type_argument) {
      node->type = TypeFromExpression(*node->args[0]);
      node->args.clear();
    }
    if (fn->regex_argument && node->args.size() > 0 && node->args[0]->kind == NodeKind::kLiteral &&
        node->args[0]->literal.kind == ValueKind::kString) {
      node->regex = CompileRegex(node->args[0]->literal_text);
      if (!node->regex) Fail(node->args[0]->pos, "invalid regular expression '" + node->args[0]->literal_text + "'");
    }
    return node;
  }

  // The type argument of is(), as(), ofType(): Quantity, FHIR.Patient, System.`String`.
  static TypeSpec TypeFromExpression(const Node& n) {
    if (n.kind == NodeKind::kMember && n.target == nullptr) return {"", n.name};
    if (n.kind == NodeKind::kMember && n.target->kind == NodeKind::kMember && n.target->target == nullptr)
      return {n.target->name, n.name};
    Fail(n.pos, "expected a type name");
  }

  TypeSpec TypeSpecifier() {
    const Token& first = Peek();
    if (first.kind != Tok::kIdent && first.kind != Tok::kQuotedIdent)
      Fail(first.pos, "expected a type name but found " + Describe(first));
    Next();
    if ((first.text == "FHIR" || first.text == "System") && IsSymbol(".") &&
        (Peek(1).kind == Tok::kIdent || Peek(1).kind == Tok::kQuotedIdent)) {
      Next();
      return {first.text, Next().text};
    }
    return {"", first.text};
  }

  std::unique_ptr<Node> Term() {
    DepthGuard guard(*this);
    const Token& t = Peek();
    auto node = std::make_unique<Node>();
    node->pos = t.pos;
    switch (t.kind) {
      case Tok::kEnd:
        Fail(t.pos, "unexpected end of expression");
      case Tok::kSymbol:
        if (t.text == "(") {
          Next();
          auto inner = Binary(kTopLevel);
          Expect(")");
          return inner;
        }
        if (t.text == "{") {
          Next();
          Expect("}");
          node->kind = NodeKind::kEmpty;
          return node;
        }
        Fail(t.pos, "unexpected " + Describe(t));
      case Tok::kString:
        SetLiteral(*node, ValueKind::kString, Next().text);
        return node;
      case Tok::kNumber:
        return NumberLiteral(std::move(node));
      case Tok::kDate:
        SetLiteral(*node, ValueKind::kDate, Next().text);
        return node;
      case Tok::kDateTime:
        SetLiteral(*node, ValueKind::kDateTime, Next().text);
        return node;
      case Tok::kTime:
        SetLiteral(*node, ValueKind::kTime, Next().text);
        return node;
      case Tok::kVariable:
        node->kind = NodeKind::kVariable;
        node->name = Next().text;
        return node;
      case Tok::kSpecial: {
        const std::string& s = Next().text;
        node->kind = s == "this" ? NodeKind::kThis : s == "index" ? NodeKind::kIndex : NodeKind::kTotal;
        return node;
      }
      case Tok::kIdent:
        if ((t.text == "true" || t.text == "false") && !IsSymbol("(", 1)) {
          SetLiteral(*node, ValueKind::kBoolean, Next().text);
          node->literal.boolean = node->literal_text == "true";
          return node;
        }
        [[fallthrough]];
      case Tok::kQuotedIdent: {
        const Token& name = Next();
        return Invocation(name, nullptr);
      }
    }
    Fail(t.pos, "unexpected " + Describe(t));
  }

  std::unique_ptr<Node> NumberLiteral(std::unique_ptr<Node> node) {
    const Token& num = Next();
    bool is_decimal = num.text.find('.') != std::string::npos;
    const Token& after = Peek();
    if (after.kind == Tok::kString || (after.kind == Tok::kIdent && IsCalendarKeyword(after.text))) {
      SetLiteral(*node, ValueKind::kQuantity, num.text);
      node->literal_unit = Next().text;
      node->literal.unit = node->literal_unit;
      node->literal.boolean = after.kind == Tok::kIdent;
      return node;
    }
    if (is_decimal) {
      if (!Decimal::Parse(num.text)) Fail(num.pos, "decimal literal out of range");
      SetLiteral(*node, ValueKind::kDecimal, num.text);
      return node;
    }
    std::int64_t v = 0;
    auto [p, ec] = std::from_chars(num.text.data(), num.text.data() + num.text.size(), v);
    if (ec != std::errc() || p != num.text.data() + num.text.size())
      Fail(num.pos, "integer literal out of range");
    SetLiteral(*node, ValueKind::kInteger, num.text);
    node->literal.integer = v;
    return node;
  }

  static void SetLiteral(Node& n, ValueKind kind, const std::string& text) {
    n.kind = NodeKind::kLiteral;
    n.literal_text = text;
    n.literal.kind = kind;
    n.literal.text = n.literal_text;
  }

  std::vector<Token> toks_;
  std::size_t i_ = 0;
  int depth_ = 0;
};

}  // namespace

Result<Expression> Expression::Parse(std::string_view text) {
  try {
    auto tokens = Lexer(text).Run();
    auto root = Parser(std::move(tokens)).Run();
    return Expression(std::make_shared<const std::string>(text), std::shared_ptr<const Node>(std::move(root)));
  } catch (const ParseFailure& f) {
    return f.error;
  }
}

}  // namespace eds::fhir::fhirpath
