#!/usr/bin/perl
# check_layering.pl - the include and I/O rules of DESIGN.md's layout, checked
# on the source tree (run by `make check-layering`, part of `make test`).
#
#   1. common/ is shared by every binary: it includes nothing from
#      controlplane/ or dataplane/.
#   2. dataplane/ (meshproxy) includes nothing from controlplane/.
#   3. The compiler (controlplane/gen/, and controlplane/xds/gen*.c until the
#      generators move there) is pure functions from model to resources: it
#      calls no I/O (files, sockets, streams), reads no environment, no clock,
#      and does not sleep.  Logging through common/log.h is allowed.
#
# A line may be let through with a comment on it naming the rule:
#   /* layering: allow (why) */
# Comments and string literals are not scanned for calls.
#
# Usage: scripts/check_layering.pl [ROOT]   (default: the current directory)
# Prints one line per violation, "path:line: rule: text"; exits 1 on any.
use strict;
use warnings;
use File::Find;

my $root = shift // '.';
chdir $root or die "check-layering: cannot enter $root: $!\n";

# Calls that do I/O or read the outside world; snprintf and friends into a
# buffer are fine.
my @io_calls = qw(
	open openat creat fopen fdopen freopen close fclose
	read write pread pwrite readv writev fread fwrite fgets fgetc getc getchar getline getdelim
	printf vprintf fprintf vfprintf dprintf vdprintf puts fputs putc fputc putchar perror
	scanf fscanf vscanf vfscanf
	stat fstat lstat access opendir readdir unlink rename mkdir rmdir
	socket connect bind listen accept accept4 send recv sendto recvfrom sendmsg recvmsg
	getaddrinfo gethostbyname poll epoll_wait select
	getenv secure_getenv setenv putenv
	time clock_gettime gettimeofday clock
	sleep usleep nanosleep
	system popen fork exec execv execve execvp
);
my $io_re = join '|', @io_calls;

my @violations;

sub files_under {
	my ($dir, $match) = @_;
	my @out;
	return () unless -d $dir;
	find({ no_chdir => 1, wanted => sub { push @out, $File::Find::name if -f $_ && $_ =~ $match } }, $dir);
	return sort @out;
}

sub slurp {
	my ($path) = @_;
	open my $fh, '<', $path or die "check-layering: $path: $!\n";
	local $/;
	my $s = <$fh>;
	close $fh;
	return $s;
}

# The text with comments and string/char literals blanked (newlines kept, so
# line numbers still match).
sub code_only {
	my ($s) = @_;
	$s =~ s{(/\*.*?\*/|//[^\n]*|"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*')}{
		my $m = $1;
		my $keep = ($m =~ tr/\n//);
		($m =~ m{^["']} ? '""' : ' ') . ("\n" x $keep)
	}gse;
	return $s;
}

sub check_includes {
	my ($path, $forbidden, $rule) = @_;
	my @lines = split /\n/, slurp($path), -1;
	for my $i (0 .. $#lines) {
		my $l = $lines[$i];
		next unless $l =~ m{^\s*#\s*include\s*[<"](?:\.\./)*($forbidden)/};
		next if $l =~ m{layering:\s*allow};
		push @violations, "$path:" . ($i + 1) . ": $rule: $l";
	}
}

sub check_io {
	my ($path) = @_;
	my $text = slurp($path);
	my @raw = split /\n/, $text, -1;
	my @code = split /\n/, code_only($text), -1;
	for my $i (0 .. $#code) {
		next unless $code[$i] =~ m{(?:^|[^A-Za-z0-9_.>])($io_re)\s*\(};
		my $call = $1;
		next if $raw[$i] =~ m{layering:\s*allow};
		push @violations, "$path:" . ($i + 1) . ": generator calls $call(): $raw[$i]";
	}
}

my $src = qr/\.[ch]$/;
check_includes($_, 'controlplane|dataplane', 'common/ includes a higher layer') for files_under('common', $src);
check_includes($_, 'controlplane', 'dataplane/ includes controlplane/') for files_under('dataplane', $src);
my @gen = (files_under('controlplane/gen', $src), grep { m{/gen[^/]*\.c$} } files_under('controlplane/xds', $src));
check_io($_) for @gen;

s/\s+$// for @violations;
print "$_\n" for @violations;
if (@violations) {
	printf "check-layering: %d violation(s) (see DESIGN.md, Layout)\n", scalar @violations;
	exit 1;
}
exit 0;
