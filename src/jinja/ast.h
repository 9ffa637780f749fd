// The syntax tree a template parses into. Expressions and statements are
// plain structs tagged with their kind; the interpreter switches on it.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "jinja/value.h"

namespace flatline::jinja::ast {

struct Location {
  int line = 1;
  int column = 1;
};

// ---- expressions -----------------------------------------------------------------

enum class ExprKind {
  Literal,    // value
  Name,       // name
  List,       // items
  Tuple,      // items
  Dict,       // items as key, value pairs
  GetAttr,    // object.name
  GetItem,    // object[index]
  Slice,      // object[start:stop:step] (children may be null)
  Call,       // callee(args)
  Filter,     // operand | name(args)
  Test,       // operand is [not] name(args)
  Unary,      // op operand: "-", "+", "not"
  Binary,     // left op right: + - * / // % ** ~ and or
  Compare,    // left (op right)+ : == != < <= > >= in notin
  Conditional // then if condition else otherwise
};

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Argument {
  std::string keyword;  // empty for positional
  ExprPtr value;
  bool star = false;       // *args
  bool star_star = false;  // **kwargs
};

struct Expr {
  ExprKind kind;
  Location where;
  Value value;                  // Literal
  std::string name;             // Name, GetAttr attribute, Filter / Test name, operator
  ExprPtr a, b, c;              // operands (object / left / then ...)
  std::vector<ExprPtr> items;   // List, Tuple; Dict as key, value, key, value...
  std::vector<Argument> args;   // Call, Filter, Test
  std::vector<std::pair<std::string, ExprPtr>> comparisons;  // Compare: (op, right)
  bool negated = false;         // Test: "is not"

  Expr(ExprKind k, Location w) : kind(k), where(w) {}
};

// ---- statements -------------------------------------------------------------------

enum class StmtKind {
  Text,        // literal template text
  Output,      // {{ expr }}
  If,          // if / elif / else
  For,         // for target in iterable [if filter] ... [else] ...
  Set,         // set target = expr
  SetBlock,    // set target [| filters] ... endset
  Macro,       // macro name(params) ... endmacro
  CallBlock,   // call [(params)] callee(args) ... endcall
  FilterBlock, // filter name(args) | ... ... endfilter
  With,        // with a = x, b = y ... endwith
  Break,
  Continue,
  Block        // a body rendered in place ({% generation %})
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

// Assignment targets: a name, ns.attribute, or a tuple of names.
struct Target {
  std::string name;                  // single name, or the namespace variable
  std::string attribute;             // set ns.attribute = ...
  std::vector<std::string> names;    // tuple unpacking when non-empty
};

struct Parameter {
  std::string name;
  ExprPtr default_value;  // may be null
};

struct Stmt {
  StmtKind kind;
  Location where;
  std::string text;                             // Text; Macro name
  ExprPtr expr;                                 // Output, Set value, For iterable, CallBlock call
  ExprPtr condition;                            // For filter
  std::vector<std::pair<ExprPtr, Body>> branches;  // If: condition, body
  Body body;                                    // For / SetBlock / Macro / CallBlock / FilterBlock / With / Block / If else
  Body else_body;                               // For else, If else
  Target target;                                // For, Set, SetBlock
  std::vector<Parameter> params;                // Macro / CallBlock caller parameters
  std::vector<ExprPtr> filters;                 // SetBlock / FilterBlock: Filter exprs applied in order (operand null)
  std::vector<std::pair<Target, ExprPtr>> assignments;  // With
  bool recursive = false;                       // For ... recursive

  Stmt(StmtKind k, Location w) : kind(k), where(w) {}
};

}  // namespace flatline::jinja::ast
